"""Shared fixtures: the Ollama double, and stand-in readers for deterministic memory figures."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from ollama_double import DoubleConfig, OllamaDouble


@pytest.fixture
def double_factory() -> Iterator[Callable[..., OllamaDouble]]:
    """Start doubles with the given DoubleConfig fields; all are stopped after the test."""
    started: list[OllamaDouble] = []

    def start(**config: object) -> OllamaDouble:
        double = OllamaDouble(DoubleConfig(**config)).start()  # type: ignore[arg-type]
        started.append(double)
        return double

    yield start
    for double in started:
        try:
            double.stop()
        except OSError:
            pass


@pytest.fixture
def double(double_factory: Callable[..., OllamaDouble]) -> OllamaDouble:
    """A well-behaved double with llama3.3 on it."""
    return double_factory()


@pytest.fixture
def closed_port_url() -> str:
    """The URL of a port on 127.0.0.1 where nothing listens (connection refused)."""
    double = OllamaDouble()
    url = double.url
    double.stop()
    return url


@pytest.fixture(autouse=True)
def private_history(tmp_path_factory, monkeypatch) -> None:
    """Every test (and every llmtop it starts) keeps its history in a folder of its own."""
    monkeypatch.setenv("LLMTOP_DATA_DIR", str(tmp_path_factory.mktemp("llmtop-data")))
