"""The local history: runs kept across restarts, filtered, exported; a damaged or locked file says so."""

import json
import sqlite3
import threading
from pathlib import Path

import pytest

from llmtop.commands.history_command import main as history_main
from llmtop.store.history import History, HistoryError, default_path, row_from_dict
from summary_rows import row

MACHINE = {"cpu_info": "AMD Ryzen 9 7950X 16-Core Processor", "ram_total_bytes": 64 * 10**9}


def test_runs_are_kept_in_order_and_read_back_equal(tmp_path):
    history = History(tmp_path / "deep" / "history.sqlite3")
    assert history.runs() == []  # no file yet: nothing, and no file made by reading
    kept = [row("llama3.3", "cpu", 0.99), row("llama3.3", "auto", 1.34), row("qwen3:8b", "auto", 30.0)]
    for summary in kept:
        history.add(summary, MACHINE)
    assert History(history.path).runs() == kept
    assert History(history.path).runs("llama3.3:latest") == kept[:2]
    assert History(history.path).runs(limit=1) == kept[2:]
    with sqlite3.connect(history.path) as db:
        [(machine,)] = db.execute("SELECT machine_json FROM runs WHERE mode = 'cpu'").fetchall()
    assert json.loads(machine) == MACHINE


def test_the_data_dir_can_be_chosen(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMTOP_DATA_DIR", str(tmp_path))
    assert default_path() == tmp_path / "history.sqlite3"


def test_rows_written_by_another_version_are_read_with_what_is_known():
    data = row("a", "cpu").to_dict()
    data["a_key_from_the_future"] = 1
    data["gpus"] = ["NVIDIA GeForce RTX 4080"]
    assert row_from_dict(data).gpus == ("NVIDIA GeForce RTX 4080",)


def test_a_damaged_file_is_a_clear_error(tmp_path):
    path = tmp_path / "history.sqlite3"
    path.write_bytes(b"this is not a database, it was overwritten by something else\n" * 100)
    with pytest.raises(HistoryError, match=r"cannot open the history at .*history.sqlite3: file is not a database"):
        History(path).add(row("a", "cpu"), MACHINE)
    with pytest.raises(HistoryError, match="file is not a database"):
        History(path).runs()


def test_a_locked_file_is_a_clear_error_after_a_short_wait(tmp_path, monkeypatch):
    monkeypatch.setattr("llmtop.store.history.BUSY_WAIT_S", 0.5)
    history = History(tmp_path / "history.sqlite3")
    history.add(row("a", "cpu"), MACHINE)
    holder = sqlite3.connect(history.path, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(HistoryError, match="database is locked"):
            history.add(row("a", "auto"), MACHINE)
    finally:
        holder.rollback()
        holder.close()
    history.add(row("a", "auto"), MACHINE)
    assert [r.mode for r in history.runs()] == ["cpu", "auto"]


def test_history_command_lists_compares_and_exports(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LLMTOP_DATA_DIR", str(tmp_path))
    history = History()
    for summary in (row("a", "cpu", 1.0), row("a", "auto", 1.5), row("b", "auto", 9.0)):
        history.add(replace_date(summary, "2026-11-20T10:00:00Z"), MACHINE)
    history.add(replace_date(row("a", "cpu", 3.0), "2026-11-24T09:30:00Z"), MACHINE)

    assert history_main(["--model", "a"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("| date | model |")
    assert out[2].startswith("| 2026-11-20 10:00 | a |") and " | cpu | " in out[2]
    assert out[4].startswith("| 2026-11-24 09:30 | a |") and " | cpu | " in out[4]
    compared = [line for line in out if line.startswith("| a |")]
    assert "| 2.00 ± 1.41 | 1.00x |" in compared[0]  # the two cpu runs, from two days
    assert "| 1.50 | 0.75x |" in compared[1]

    out_file = tmp_path / "past.csv"
    assert history_main(["--export", str(out_file)]) == 0
    assert len(out_file.read_text().splitlines()) == 5


def test_history_command_errors_are_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LLMTOP_DATA_DIR", str(tmp_path))
    assert history_main([]) == 1
    assert "no runs kept yet (history file: " in capsys.readouterr().err
    (tmp_path / "history.sqlite3").write_bytes(b"\0garbage" * 512)
    assert history_main([]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "file is not a database" in err
    with pytest.raises(SystemExit) as exit_info:
        history_main(["--export", "past.txt"])
    assert exit_info.value.code == 2
    assert "use .md, .csv or .json" in capsys.readouterr().err


def replace_date(summary, when):
    from dataclasses import replace

    return replace(summary, started_at=when)


def test_history_writes_from_several_threads_do_not_collide(tmp_path):
    history = History(tmp_path / "history.sqlite3")
    failures = []

    def add(model):
        try:
            for _ in range(5):
                history.add(row(model, "cpu"), MACHINE)
        except HistoryError as exc:
            failures.append(exc)

    threads = [threading.Thread(target=add, args=(f"m{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == [] and len(history.runs()) == 20


def test_a_damaged_file_is_moved_aside_by_repair_and_a_new_history_starts(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LLMTOP_DATA_DIR", str(tmp_path))
    path = tmp_path / "history.sqlite3"
    damage = b"\0garbage" * 512
    path.write_bytes(damage)
    assert history_main([]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.rstrip().endswith(
        "file is not a database (`llmtop history --repair` moves it aside and starts a new one)"
    )
    assert history_main(["--repair"]) == 0
    err = capsys.readouterr().err
    moved = [p for p in tmp_path.iterdir() if p.name.startswith("history.sqlite3.damaged-")]
    assert len(moved) == 1 and moved[0].read_bytes() == damage  # kept, not deleted
    assert f"was damaged (file is not a database); moved it to {moved[0]}" in err
    assert not path.exists()
    History().add(row("a", "cpu"), MACHINE)
    assert [r.mode for r in History().runs()] == ["cpu"]
    assert history_main(["--repair"]) == 0
    assert "reads fine: nothing to repair" in capsys.readouterr().err
    assert [r.mode for r in History().runs()] == ["cpu"]


def test_a_locked_file_is_not_called_damaged(tmp_path, monkeypatch):
    monkeypatch.setattr("llmtop.store.history.BUSY_WAIT_S", 0.5)
    history = History(tmp_path / "history.sqlite3")
    history.add(row("a", "cpu"), MACHINE)
    holder = sqlite3.connect(history.path, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        assert history.damaged() is None
        with pytest.raises(HistoryError) as error:
            history.add(row("a", "auto"), MACHINE)
        assert "--repair" not in str(error.value)
    finally:
        holder.rollback()
        holder.close()


def test_two_llmtops_writing_at_the_same_moment_both_keep_their_rows(tmp_path):
    """Two processes add a run while the file is held longer than SQLite's own busy wait (2 s): each
    waits and tries again, and both rows are kept."""
    import subprocess
    import sys
    import time

    path = tmp_path / "history.sqlite3"
    History(path).add(row("first", "cpu"), MACHINE)
    holder = sqlite3.connect(path, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    script = (
        f"import sys\nsys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from llmtop.store.history import History\nfrom summary_rows import row\n"
        f"History(__import__('pathlib').Path({str(path)!r})).add(row(sys.argv[1], 'auto'), {{}})\n"
    )
    writers = [subprocess.Popen([sys.executable, "-c", script, name], stderr=subprocess.PIPE) for name in ("a", "b")]
    time.sleep(3.0)  # elapsed time is what is tested: held past SQLite's 2 s busy timeout
    holder.rollback()
    holder.close()
    for writer in writers:
        _, err = writer.communicate(timeout=30)
        assert writer.returncode == 0, err
    assert sorted(r.model for r in History(path).runs()) == ["a", "b", "first"]


def test_history_refuses_what_it_cannot_honour_before_it_reads(tmp_path, capsys):
    for argv, said in (
        (["--repair", "--model", "x"], "argument --repair: only moves a damaged history aside: given alone"),
        (["--watched", "--lang", "ja"], "argument --lang: the watched requests' table has no Japanese headers"),
        (["--export", str(tmp_path / "missing" / "h.md")], "the folder"),
    ):
        with pytest.raises(SystemExit) as ended:
            history_main(argv)
        assert ended.value.code == 2
        assert said in capsys.readouterr().err.strip().splitlines()[-1], argv
