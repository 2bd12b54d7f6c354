"""What the screen's `e` writes and says: the export's name, and one message per failure then one
for what was written (store/session_files.py, pure)."""

from __future__ import annotations

import datetime as dt

from llmtop.store.session_files import Written, export_name, outcome_messages


def test_the_export_is_named_after_the_model_made_safe_for_a_file_name():
    now = dt.datetime(2026, 12, 6, 18, 4, 5)
    name = export_name("hf.co/unsloth/Llama-3.3:Q4_K_M", now)
    assert name == "llmtop-hf.co_unsloth_Llama-3.3_Q4_K_M-20261206-180405.md"


def test_each_failure_is_said_on_its_own_then_what_was_written_in_one_line():
    outcomes = [
        Written("export", "s.md", written="s.md"),
        Written("chart", "/ro/c.svg", problem="cannot write /ro/c.svg: Read-only file system"),
        Written("report", "r.html", written="r.html"),
    ]
    assert outcome_messages(outcomes, 3) == [
        ("cannot write /ro/c.svg: Read-only file system", True),
        ("wrote 3 run(s) to s.md and the report to r.html", False),
    ]
    no_export = [Written("export", "/ro/s.md", problem="cannot write /ro/s.md: Permission denied"),
                 Written("chart", "c.svg", written="c.svg")]  # fmt: skip
    assert outcome_messages(no_export, 1) == [
        ("cannot write /ro/s.md: Permission denied", True),
        ("wrote the chart to c.svg", False),
    ]
    assert outcome_messages([], 2) == []
