"""The screens people see, compared with the SVGs kept in tests/__snapshots__/ (reviewed like code).

After a change that alters a screen on purpose: `.venv/bin/python -m pytest tests/test_snapshots.py
--snapshot-update`, then look at the new SVGs (the report `snapshot_report.html` shows the old and
the new side by side) and commit them with the change.
"""

import pytest

from scenes import SCENES


@pytest.mark.parametrize("scene", SCENES, ids=lambda scene: scene.name)
def test_the_screen_looks_as_reviewed(scene, snap_compare):
    app, world = scene.app()

    async def reach_the_scene(pilot):
        await scene.settle(app, world, pilot)

    try:
        assert snap_compare(app, terminal_size=scene.size, run_before=reach_the_scene)
    finally:
        world.player.stop()
