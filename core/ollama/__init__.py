"""Talking to Ollama: the API client and its stream reader, the host and its access, model facts."""
