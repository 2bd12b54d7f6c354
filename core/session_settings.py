"""What a run asks of Ollama: the prompt and where the layers go."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# The prompt of the article this project grew from ("Predict the future of AI, in 100 characters").
DEFAULT_PROMPT = "AIの未来を予測してください。（100字）"


@dataclass(frozen=True)
class RunSettings:
    """What one run asks of Ollama. num_gpu None lets Ollama decide; 0 is CPU only."""

    prompt: str = DEFAULT_PROMPT
    num_gpu: int | None = None

    @property
    def mode(self) -> str:
        if self.num_gpu is None:
            return "auto"
        return "cpu" if self.num_gpu == 0 else f"gpu={self.num_gpu}"

    def options(self) -> dict[str, Any]:
        return {} if self.num_gpu is None else {"num_gpu": self.num_gpu}
