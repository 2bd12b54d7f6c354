"""The `llmtop` command: one guard over every subcommand, and the dispatch to the module that runs
it (`llmtop MODEL` is model_command's, `llmtop watch` watch_command's, and so on)."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence

from llmtop.commands.output import OutputFailed, end_after_closed_pipe, prepare_streams
from llmtop.exit_status import EXIT_FAILED

# the first word of the command line -> the module whose main(argv) runs it; anything else is a
# model name (`llmtop llama3.3 ...`). `llmtop demo` is `llmtop replay` of the recording that ships.
SUBCOMMAND_MODULES = {
    "watch": "llmtop.commands.watch_command",
    "history": "llmtop.commands.history_command",
    "replay": "llmtop.commands.replay_command",
    "demo": "llmtop.commands.replay_command",
    "doctor": "llmtop.commands.doctor_command",
    "fit": "llmtop.commands.fit_command",
    "parse-log": "llmtop.commands.parse_log_command",
}
MODEL_MODULE = "llmtop.commands.model_command"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `llmtop` command; returns the exit status. Every subcommand writes its
    files before it prints; a closed pipe ends quietly, a failed print in one line."""
    prepare_streams()
    try:
        return _guarded(list(sys.argv[1:] if argv is None else argv))
    except BrokenPipeError:
        return end_after_closed_pipe()
    except OutputFailed as exc:
        sys.stderr.write(f"llmtop: {exc}\n")
        return EXIT_FAILED


def _guarded(argv: list[str]) -> int:
    """Every subcommand under one guard: a bug ends in one line naming the error log, exit 1, never
    a traceback (LLMTOP_DEBUG=1 shows it instead)."""
    try:
        return _command(argv)
    except (OutputFailed, BrokenPipeError, SystemExit, KeyboardInterrupt):
        raise
    except Exception as exc:  # the last line of defence
        if os.environ.get("LLMTOP_DEBUG"):
            raise
        from llmtop.data_folder import internal_error

        where = f"llmtop {argv[0]}" if argv[:1] and argv[0] in SUBCOMMAND_MODULES else "llmtop"
        sys.stderr.write(f"llmtop: {internal_error(where, exc)} (set LLMTOP_DEBUG=1 to see it here)\n")
        return EXIT_FAILED


def _command(argv: list[str]) -> int:
    name = argv[0] if argv[:1] and argv[0] in SUBCOMMAND_MODULES else None
    module = importlib.import_module(SUBCOMMAND_MODULES[name] if name else MODEL_MODULE)
    if name == "demo":
        return int(module.main(argv[1:], demo=True))
    return int(module.main(argv[1:] if name else argv))
