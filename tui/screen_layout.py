"""Which parts of the run screen are shown at a terminal's size, and how `m` steps through the
chart views. Pure: the app applies it."""

from __future__ import annotations

from dataclasses import dataclass

WIDE_COLUMNS = 160  # from this width on, the tokens/s chart and the memory timeline are shown side by side
NARROW_COLUMNS = 100  # below this width, the gauges take the whole width and a chart replaces them on m or b
SHORT_ROWS = 32  # below this height, the screen drops its borders and the legend


@dataclass(frozen=True)
class ScreenLayout:
    """What is shown: `narrow` and `short` style the screen; the gauges, and which charts."""

    narrow: bool
    short: bool
    gauges: bool
    bars: bool
    tps: bool
    memory: bool

    @property
    def reason_rows(self) -> int:
        """The rows the split's reason may take."""
        return 1 if self.short else 4


def screen_layout(width: int, height: int, view: str, charts_instead: bool) -> ScreenLayout:
    """`view`: the chart beside the gauges ("tps", "memory" or "bars"); `charts_instead`: on a
    narrow screen, the chart in place of the gauges. From WIDE_COLUMNS on, the memory timeline is
    added to the tps chart (or to the bars); below NARROW_COLUMNS the gauges take the whole width;
    below SHORT_ROWS the screen drops its borders and legend."""
    narrow, wide = width < NARROW_COLUMNS, width >= WIDE_COLUMNS
    charts = not narrow or charts_instead
    return ScreenLayout(
        narrow=narrow,
        short=height < SHORT_ROWS,
        gauges=not narrow or not charts_instead,
        bars=charts and view == "bars",
        tps=charts and (view == "tps" or (wide and view == "memory")),
        memory=charts and (view == "memory" or (wide and not narrow)),
    )


def after_memory_key(width: int, view: str, charts_instead: bool) -> tuple[str, bool]:
    """(view, charts_instead) after `m`: tps <-> memory beside the gauges; on a narrow screen, in
    their place, memory, then tps, then the gauges again."""
    if width >= NARROW_COLUMNS:
        return ("tps" if view == "memory" else "memory"), charts_instead
    if not charts_instead or view == "bars":
        return "memory", True
    if view == "memory":
        return "tps", True
    return "tps", False
