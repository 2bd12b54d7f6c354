"""Make the README's pictures of the HTML report: `llmtop demo --report`, and `llmtop replay --report` of
the comparison's and the sweep's recordings, opened in Debian's Chromium (through Playwright, as
tests/test_report_browser.py opens them) and photographed at the top of the page.

    .venv/bin/python screenshots/make_report_pictures.py

Each picture is screenshots/report-NAME.png (1000 px wide, light theme), with report-demo-dark.png
and report-demo-spill.png (the demo's second run's memory timeline, its spill shaded), and
report-moe-sweep.png: the memory by part and the conclusion of `llmtop tanuki-8x8b --serve --sweep
moe=0,8,16,24` run against the stand-in `ollama` (tests/stand_in_ollama.py) playing Ollama 0.34.4 on
the article's machine at its own speed (tests/spilling_machine.py: a model of a 16 GB Radeon, no GPU
measured; about two minutes).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
LLMTOP = [sys.executable, "-m", "llmtop"]
PAGES = {"demo": None, "compare": HERE / "recordings" / "compare.jsonl", "sweep": HERE / "recordings" / "sweep.jsonl"}


def report(name: str, recording: Path | None, folder: Path) -> Path:
    path = folder / f"{name}.html"
    what = ["demo"] if recording is None else ["replay", str(recording)]
    subprocess.run([*LLMTOP, *what, "--headless", "--report", str(path)], check=True, capture_output=True)
    return path


def moe_sweep_report(folder: Path) -> Path:
    """The experts sweep on the double of a too-small GPU, as tests/test_serve_settings_double.py runs it."""
    import os

    sys.path.insert(0, str(HERE.parent / "tests"))
    from spilling_machine import SpillingMachine

    sysfs = SpillingMachine().install(folder / "sys")
    launcher = folder / "bin" / "ollama"
    launcher.parent.mkdir()
    launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{HERE.parent / "tests" / "stand_in_ollama.py"}" "$@"\n')
    launcher.chmod(0o755)
    env = dict(os.environ, PATH=f"{launcher.parent}{os.pathsep}{os.environ['PATH']}", STAND_IN_VERSION="0.34.4",
               STAND_IN_SYSFS=str(sysfs), LLMTOP_SYSFS_ROOT=str(sysfs), STAND_IN_SPEEDUP="1")  # fmt: skip
    env.pop("OLLAMA_HOST", None)
    path = folder / "moe-sweep.html"
    command = ["tanuki-8x8b", "--serve", "--sweep", "moe=0,8,16,24", "--headless", "--no-record", "--report", str(path)]
    subprocess.run([*LLMTOP, *command], check=True, capture_output=True, env=env)
    return path


def main() -> None:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("make_report_pictures: no Chromium (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as folder, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        for name, recording in PAGES.items():
            page_file = report(name, recording, Path(folder))
            schemes = ("light", "dark") if name == "demo" else ("light",)
            for scheme in schemes:
                page = browser.new_page(viewport={"width": 1000, "height": 1500}, color_scheme=scheme)
                page.goto(page_file.as_uri())
                target = HERE / (f"report-{name}.png" if scheme == "light" else f"report-{name}-{scheme}.png")
                page.screenshot(path=str(target))
                print("wrote", target)
                if name == "demo" and scheme == "light":  # the spill, as the README shows it
                    spill = HERE / "report-demo-spill.png"
                    page.locator("figure[data-name='run-2-memory']").screenshot(path=str(spill))
                    print("wrote", spill)
                page.close()
        page = browser.new_page(viewport={"width": 1000, "height": 1500}, color_scheme="light")
        page.goto(moe_sweep_report(Path(folder)).as_uri())
        target = HERE / "report-moe-sweep.png"
        page.locator("#parts").screenshot(path=str(target))
        print("wrote", target)
        target = HERE / "report-moe-sweep-conclusion.png"
        page.locator("#sweep").screenshot(path=str(target))
        print("wrote", target)
        page.close()
        browser.close()


if __name__ == "__main__":
    main()
