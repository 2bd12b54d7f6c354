"""Small widgets of the llmtop screen, one per module."""
