"""The live tokens/s chart (plotext), downsampled to a fixed number of points."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from textual_plotext import PlotextPlot


class TokenRateChart(PlotextPlot):
    """tokens/s against seconds since the request; `show_series` redraws."""

    DEFAULT_CSS = """
    TokenRateChart { height: 14; width: 1fr; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.points: list[tuple[float, float]] = []

    def on_mount(self) -> None:
        super().on_mount()
        self._draw()

    def show_series(self, points: Sequence[tuple[float, float]]) -> None:
        """Replace the plotted (seconds, tokens/s) points."""
        points = list(points)
        if points != self.points:
            self.points = points
            self._draw()

    def _draw(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.title("tokens/s (2 s window)")
        plt.xlabel("s since request")
        if self.points:
            xs, ys = zip(*self.points, strict=True)
            plt.plot(list(xs), list(ys), marker="braille", color="blue")  # a set colour: the default cycles
            plt.ylim(0, max(ys) * 1.15 or 1)
        self.refresh()


class TpsBarChart(PlotextPlot):
    """tokens/s per model and mode as bars (the article's graph), shown when a plan of modes ends and on `b`."""

    DEFAULT_CSS = """
    TpsBarChart { height: 14; width: 2fr; display: none; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.bars: list[Any] = []

    def show_bars(self, bars: Sequence[Any]) -> None:
        """Replace the bars (llmtop.store.charts.Bar)."""
        if list(bars) == self.bars:
            return
        self.bars = list(bars)
        plt = self.plt
        plt.clear_figure()  # every setting too: what is drawn depends on these bars alone
        plt.title("tokens/s (eval rate), mean of the runs")
        if self.bars:
            # The value goes in the label: plotext draws no figures on the bars themselves. Bars
            # lie down so that every label has a row of its own: under vertical bars, plotext
            # leaves out labels that do not fit side by side.
            labels = [f"{b.label}: {b.value:.2f}" for b in self.bars]
            values = [round(b.value, 2) for b in self.bars]
            plt.bar(labels, values, width=0.4, color="blue", orientation="horizontal")
            plt.xlim(0, max(max(b.value for b in self.bars), 0.01) * 1.1)
        self.refresh()
