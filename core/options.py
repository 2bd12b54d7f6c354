"""Options that several commands take, defined once: the same limits, default and help wherever
they appear (`llmtop MODEL`, `llmtop watch`)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

INTERVAL_S = 0.25  # the collectors' sampling interval unless --interval says otherwise
INTERVAL_LIMITS = (0.05, 60.0)


def float_between(low: float, high: float, unit: str = "") -> Callable[[str], float]:
    """An argparse type: a number from `low` to `high`, with a one-line reason otherwise."""

    def read(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low:g} and {high:g}{unit}, got {text}")
        return value

    return read


def add_interval_argument(parser: argparse.ArgumentParser) -> None:
    """`--interval SECONDS`: how often RAM, GPU memory, the Ollama processes and power are sampled."""
    parser.add_argument(
        "--interval",
        metavar="SECONDS",
        type=float_between(*INTERVAL_LIMITS, " seconds"),
        default=INTERVAL_S,
        help=f"sampling interval of RAM, GPU memory and power, {INTERVAL_LIMITS[0]:g} to {INTERVAL_LIMITS[1]:g} "
        f"(default: {INTERVAL_S:g})",
    )
