"""`llmtop replay FILE` and `llmtop demo`: a recording played in the same screen as a live run."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from llmtop.commands.headless import watch_printer
from llmtop.commands.instruments import Instruments
from llmtop.commands.options import (
    add_chart_argument,
    add_export_argument,
    add_lang_argument,
    add_report_argument,
    check_files,
)
from llmtop.commands.output import export_requests
from llmtop.commands.plan_runs import run_headless, run_on_screen
from llmtop.exit_status import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from llmtop.measure.stopping import stop_for
from llmtop.store.replay import Recording

if TYPE_CHECKING:
    from llmtop.store.watch_replay import WatchReplay
    from llmtop.watch.state import WatchedRequest

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
    add_export_argument(parser, "the runs (of a watch: its requests)")
    add_lang_argument(parser)
    add_chart_argument(parser)
    add_report_argument(parser)
    return parser


def demo_path() -> Path:
    """The recording shipped inside the package."""
    return Path(str(resources.files("llmtop") / "data" / DEMO))


def main(argv: Sequence[str], demo: bool = False) -> int:
    from llmtop.store.recording import RecordingError
    from llmtop.store.replay import load_recording

    parser = build_parser(demo)
    args = parser.parse_args(argv)
    check_files(parser, args)
    speed: float | None = getattr(args, "speed", None if args.headless else 1.0)
    path = demo_path() if demo else Path(args.file)
    try:
        recording = load_recording(path)
    except RecordingError as exc:
        sys.stderr.write(f"llmtop: {exc}\n")
        return EXIT_USAGE
    recorded = str(recording.header.get("wall") or "?").replace("T", " ")
    banner = DEMO_BANNER if demo or recording.header.get("demo") else f"REPLAY of {path.name}, recorded {recorded}"
    try:
        if recording.header.get("watch"):  # a `llmtop watch` session
            asked = (("--chart", args.chart), ("--lang", args.lang != "en"), ("--columns", args.columns))
            unhonoured = [o for o, given in asked if given]
            if unhonoured:
                parser.error(
                    f"argument {unhonoured[0]}: {path.name} is a recording of `llmtop watch`, whose replay exports "
                    "its requests (--export, --report) but has no runs to chart or table headers to translate"
                )
            return replay_watch(recording, args, banner, speed)
        return replay_runs(recording, args, banner, speed)
    except KeyboardInterrupt:
        sys.stderr.write("llmtop: interrupted\n")
        return stop_for(signal.SIGINT).status


def replay_runs(recording: Recording, args: argparse.Namespace, banner: str, speed: float | None) -> int:
    """A recording of `llmtop MODEL`: its plan played in the same screen, or headless."""
    from llmtop.store.replay import replay

    world, runner = replay(recording, speed)
    with Instruments() as kit:
        kit.use_collectors(world.collectors)
        kit.use_log(world.log, world.log_reason)
        if args.headless:
            sys.stderr.write(f"llmtop: {banner}\n")
            status = run_headless(runner, args)
        else:
            status = run_on_screen(runner, args, banner, empty_ok=False)
    if status == EXIT_OK and recording.damage:
        return EXIT_FAILED
    return status


def report_watch(world: WatchReplay, recording: Recording, requests: list[WatchedRequest], path: str) -> int:
    """--report of a watch's replay: its requests and the memory over the whole session."""
    from llmtop.measure.timeline import recent_timeline
    from llmtop.store.report import SessionReport, write_report

    collectors = world.collectors
    memory = collectors.memory.all()
    watched = None
    if memory:
        start, until = memory[0].t, memory[-1].t
        loads = [(t, "load") for state in world.states.values() for t in state.load_times()]
        gpu = collectors.gpu.all() if collectors.gpu is not None else []
        watched = recent_timeline(memory, collectors.processes.all(), gpu, start, until, loads, points=240)
    machine = recording.first("machine")
    report = SessionReport([], [], dict(machine["machine"]) if machine else {}, requests=requests, watched=watched)
    try:
        written = write_report(path, report)
    except OSError as exc:
        sys.stderr.write(f"llmtop: cannot write {path}: {exc.strerror or exc}\n")
        return EXIT_FAILED
    sys.stderr.write(f"llmtop: wrote {written}\n")
    return EXIT_OK


def replay_watch(recording: Recording, args: argparse.Namespace, banner: str, speed: float | None) -> int:
    """A recording of `llmtop watch`: on screen, or its events as lines with --headless."""
    from llmtop.store.watch_replay import WatchReplay, recorded_wall

    world = WatchReplay(recording, speed)
    wall = recorded_wall(recording)
    several = len(world.hosts) > 1
    with Instruments() as kit:
        kit.use_collectors(world.collectors)
        kit.use_log(world.log)
        if args.headless:
            sys.stderr.write(f"llmtop: {banner}\n")
            for host, state in world.states.items():
                state.listeners.append(watch_printer(sys.stdout, host if several else None, wall))
            world.play()
        else:
            from llmtop.tui.watch_app import WatchApp, WatchedScreen

            kit.stopping(world.start())
            servers = [WatchedScreen(host, state) for host, state in world.states.items()]
            WatchApp(servers, world.collectors, world.log, banner=banner, clock=world.player.now, wall=wall).run()
    requests = [r for s in world.states.values() for r in s.snapshot().requests]
    if args.export:
        status = export_requests(requests, args.export)
        if status != EXIT_OK:
            return status
    if args.report:
        status = report_watch(world, recording, requests, args.report)
        if status != EXIT_OK:
            return status
    if recording.damage:
        sys.stderr.write(f"llmtop: note: {recording.damage}; replayed up to there\n")
        return EXIT_FAILED
    return EXIT_OK
