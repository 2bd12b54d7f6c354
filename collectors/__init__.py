"""Data sources sampled by llmtop: system RAM, the Ollama process tree, token timing."""
