"""The exit statuses of every llmtop command, in one table (README.md's "Exit status" shows it and
tests/test_readme.py holds the two together). Every layer may read it: it imports nothing."""

from __future__ import annotations

EXIT_OK = 0  # everything asked for was done
EXIT_FAILED = 1  # a run, a file or a recording failed; what was measured is kept
EXIT_USAGE = 2  # bad input (an option, a file, a model, a server that cannot be reached): said before anything runs
EXIT_SIGHUP = 129  # 128 + SIGHUP: the terminal went away; the run in progress is kept
EXIT_SIGINT = 130  # 128 + SIGINT: Ctrl+C; the run in progress is kept
EXIT_CLOSED_PIPE = 141  # 128 + SIGPIPE: the reader of standard output went away (`| head`)
EXIT_SIGTERM = 143  # 128 + SIGTERM: asked to stop; the run in progress is kept
EXIT_SIGBREAK = 149  # 128 + SIGBREAK (Windows: Ctrl+Break, the console closed); the run in progress is kept

EXIT_STATUSES = {
    EXIT_OK: "everything asked for was done",
    EXIT_FAILED: "a run, a file or a recording failed; what was measured is kept",
    EXIT_USAGE: "bad input, said in one line before anything runs",
    EXIT_SIGHUP: "SIGHUP (the terminal closed); the run in progress is kept",
    EXIT_SIGINT: "Ctrl+C (SIGINT); the run in progress is kept",
    EXIT_CLOSED_PIPE: "the reader of standard output went away (`| head`)",
    EXIT_SIGTERM: "SIGTERM; the run in progress is kept",
    EXIT_SIGBREAK: "Ctrl+Break or the console closed (Windows); the run in progress is kept",
}
