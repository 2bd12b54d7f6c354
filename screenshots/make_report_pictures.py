"""Make the README's pictures of the HTML report: `llmtop demo --report`, and `llmtop replay --report` of
the comparison's and the sweep's recordings, opened in Debian's Chromium (through Playwright, as
tests/test_report_browser.py opens them) and photographed at the top of the page.

    .venv/bin/python screenshots/make_report_pictures.py

Each picture is screenshots/report-NAME.png (1000 px wide, light theme), with report-demo-dark.png
and report-demo-spill.png (the demo's second run's memory timeline, its spill shaded).
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
        browser.close()


if __name__ == "__main__":
    main()
