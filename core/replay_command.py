"""`llmtop replay FILE` and `llmtop demo`: a recording played in the same screen as a live run."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from llmtop.charts import chart_format
from llmtop.exports import LANGUAGES, export_format
from llmtop.stopping import stop_for

EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_USAGE = 2

DEMO = "demo.jsonl"
DEMO_BANNER = (
    "DEMO: a replay, not this machine. Recorded from llmtop against its test double of Ollama, "
    "with recorded counter values of a 16 GB Radeon RX 7600 XT"
)


def _speed(text: str) -> float | None:
    if text.strip().lower() == "max":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number or `max`: {text!r}") from None
    if not 0.01 <= value <= 10000:
        raise argparse.ArgumentTypeError(f"must be between 0.01 and 10000 (or `max`), got {text}")
    return value


def build_parser(demo: bool) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmtop demo" if demo else "llmtop replay",
        description=(
            "Replay the recording that ships with llmtop: a 70B model partly offloaded on a 16 GB card, "
            "spilling into shared GPU memory. No Ollama and no GPU needed."
            if demo
            else "Play a recording (llmtop writes one for every session) in the same screen as a live run: "
            "gauges, chart, text, table. A recording cut short replays up to where it stops."
        ),
    )
    if not demo:
        parser.add_argument("file", metavar="FILE", help="a recording (.jsonl) written by llmtop")
    parser.add_argument(
        "--speed",
        metavar="X",
        type=_speed,
        default=argparse.SUPPRESS,
        help="X times real time, or `max` for no waiting (default: 1 on screen, max with --headless)",
    )
    parser.add_argument("--headless", action="store_true", help="no screen: print the compared table to stdout")
    parser.add_argument("--export", metavar="PATH", help="write the runs to PATH: .md, .csv or .json")
    parser.add_argument("--lang", choices=LANGUAGES, default="en", help="Markdown headers: en or ja")
    parser.add_argument("--chart", metavar="PATH", help="write the tps bar chart to PATH: .svg, .html or .png")
    return parser


def demo_path() -> Path:
    """The recording shipped inside the package."""
    return Path(str(resources.files("llmtop") / "data" / DEMO))


def main(argv: Sequence[str], demo: bool = False) -> int:
    from llmtop.recording import RecordingError
    from llmtop.replay import load_recording, replay

    parser = build_parser(demo)
    args = parser.parse_args(argv)
    for option, check in (("export", export_format), ("chart", chart_format)):
        if getattr(args, option):
            try:
                check(getattr(args, option))
            except ValueError as exc:
                parser.error(f"argument --{option}: {exc}")
    speed = getattr(args, "speed", None if args.headless else 1.0)
    path = demo_path() if demo else Path(args.file)
    try:
        recording = load_recording(path)
    except RecordingError as exc:
        sys.stderr.write(f"llmtop: {exc}\n")
        return EXIT_USAGE
    recorded = str(recording.header.get("wall") or "?").replace("T", " ")
    banner = DEMO_BANNER if demo or recording.header.get("demo") else f"REPLAY of {path.name}, recorded {recorded}"
    if recording.header.get("watch"):  # a `llmtop watch` session
        from llmtop.watch_replay import replay_watch

        try:
            return replay_watch(recording, args, banner)
        except KeyboardInterrupt:
            sys.stderr.write("llmtop: interrupted\n")
            return stop_for(signal.SIGINT).status
    world, runner = replay(recording, speed)
    try:
        if args.headless:
            from llmtop.model_command import run_headless

            sys.stderr.write(f"llmtop: {banner}\n")
            runner.on_note = lambda message: sys.stderr.write(f"llmtop: note: {message}\n")
            status = run_headless(runner, args)
        else:
            from llmtop.model_command import run_on_screen

            status = run_on_screen(runner, args, banner, empty_ok=False)
    except KeyboardInterrupt:
        sys.stderr.write("llmtop: interrupted\n")
        return stop_for(signal.SIGINT).status
    if status == EXIT_OK and recording.damage:
        return EXIT_RUN_FAILED
    return status
