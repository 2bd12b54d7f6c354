"""The Textual app: it only renders what the session and collectors hand it."""
