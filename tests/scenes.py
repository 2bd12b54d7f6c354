"""The screens people see, as reproducible scenes: a recording replayed in the real app, paused at a
given moment, at a given terminal size, after some keys. The snapshot tests (test_snapshots.py)
and the README's pictures (screenshots/make_screenshots.py) are made from these same scenes.

A replay at `speed=None` runs on the recording's own clock, so every figure, timer and chart on
screen is the same on every machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from textual.pilot import Pilot

from llmtop.commands.replay_command import DEMO_BANNER, demo_path
from llmtop.store.replay import Replay, load_recording, replay
from llmtop.tui.app import SLOW_EVERY, LlmtopApp
from waiting import eventually_async, next_frame

RECORDINGS = Path(__file__).resolve().parent.parent / "screenshots" / "recordings"


@dataclass(frozen=True)
class Scene:
    """`recording` replayed up to `at` (the fraction of a run's tokens, in the `run`-th run, 0 the
    first; None: to the end), then `keys` pressed; `banner` marks a replay (the demo's)."""

    name: str
    recording: Path
    size: tuple[int, int]
    run: int | None = None
    at: float = 1.0
    keys: Sequence[str] = ()
    banner: str | None = None
    toasts: bool = True  # False: notifications are cleared first (their age at the picture varies with timing)

    def pause_at(self) -> float | None:
        """The recording's time to stop at, or None for its end."""
        if self.run is None:
            return None
        events = load_recording(self.recording).events
        runs = [i for i, e in enumerate(events) if e["event"] == "run"]
        following = runs[self.run + 1] if self.run + 1 < len(runs) else len(events)
        tokens = [e for e in events[runs[self.run] : following] if e["event"] == "token"]
        return float(tokens[min(int(len(tokens) * self.at), len(tokens) - 1)]["t"])

    def app(self) -> tuple[LlmtopApp, Replay]:
        world, runner = replay(load_recording(self.recording), speed=None, pause_at=self.pause_at())
        return LlmtopApp(runner, banner=self.banner), world

    async def settle(self, app: LlmtopApp, world: Replay, pilot: Pilot, timeout: float = 30.0) -> None:
        """Wait until the replay has reached the scene's moment and the screen shows it, then press
        the scene's keys."""
        pause = world.player.pause_at

        def there() -> bool:
            if pause is not None:
                return world.player.at >= pause
            shown = app.runs_table.row_count == len(app.runner.rows)
            done = not app.runs_thread.running and bool(app.runner.rows) and shown
            if done and app.runner.sweep is not None:  # a sweep's conclusion is drawn a refresh after its last row
                return bool(str(app.query_one("#conclusion").render()).strip())
            return done

        await eventually_async(there, timeout, f"scene {self.name}: the replay there", lambda: pilot.pause(0.05))
        # Every widget shows what the replay reached: live frames after it, and mid-run the chart's,
        # which is drawn every SLOW_EVERY frames.
        await next_frame(pilot, timeout, frames=2 if pause is None else SLOW_EVERY + 1)
        await pilot.wait_for_scheduled_animations()
        if not self.toasts:
            app.clear_notifications()
        for key in self.keys:
            await pilot.press(key)
            await next_frame(pilot, timeout)
        if self.toasts and app.notified:  # a toast is mounted a moment after it is asked for
            try:
                await eventually_async(
                    lambda: len(app.screen.query("Toast")) > 0, 5.0, "the toast shown", lambda: pilot.pause(0.05)
                )
            except AssertionError:  # gone already (shown for 10 s, on a slow machine): the snapshot will say
                pass
            await pilot.wait_for_scheduled_animations()
        # Where the screen does not fit the terminal, it shows its top (a new row may have scrolled it).
        app.screen.scroll_home(animate=False, immediate=True)
        await pilot.pause()


COMPARE = RECORDINGS / "compare.jsonl"
ENGINE = RECORDINGS / "engine.jsonl"
SWEEP = RECORDINGS / "sweep.jsonl"

# The screens at the two sizes people use most (mid-run, a finished run, a finished comparison, the
# memory timeline, the help), and the README's pictures.
SCENES = (
    Scene("run-middle-120x40", COMPARE, (120, 40), run=1, at=0.6),
    Scene("run-middle-80x24", COMPARE, (80, 24), run=1, at=0.6),
    Scene("run-end-120x40", COMPARE, (120, 40)),
    Scene("run-end-80x24", COMPARE, (80, 24)),
    Scene("one-run-120x40", ENGINE, (120, 40)),
    Scene("one-run-80x24", ENGINE, (80, 24)),
    Scene("memory-120x40", demo_path(), (120, 40), run=1, at=2 / 3, keys=("m",), banner=DEMO_BANNER, toasts=False),
    Scene("memory-80x24", demo_path(), (80, 24), run=1, at=2 / 3, keys=("m",), banner=DEMO_BANNER, toasts=False),
    Scene("help-120x40", COMPARE, (120, 40), keys=("question_mark",)),
    Scene("compare", COMPARE, (140, 50)),
    Scene("session", COMPARE, (140, 50), keys=("b",)),
    Scene("log-pane", COMPARE, (140, 50), keys=("b", "l")),
    Scene("spillover", demo_path(), (160, 50), run=1, at=2 / 3, banner=DEMO_BANNER),
    Scene("real-engine", ENGINE, (140, 50)),
    Scene("sweep", SWEEP, (140, 50), toasts=False),
)
README_PICTURES = {"compare", "session", "log-pane", "spillover", "real-engine", "sweep"}
