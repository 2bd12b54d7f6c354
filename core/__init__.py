"""llmtop: a live monitor for local LLMs on Ollama."""

__version__ = "0.1.0"
