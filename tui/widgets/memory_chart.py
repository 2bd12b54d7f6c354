"""The memory timeline (plotext): RAM, Ollama's resident memory, VRAM and shared GPU memory over a run,
each with its baseline as a flat line of its colour, and the phases marked on the time axis."""

from __future__ import annotations

import math

from textual_plotext import PlotextPlot

from llmtop import words
from llmtop.measure.timeline import Timeline
from llmtop.tui.word_wrap import fit

GB = 1e9
Y_AXIS_COLUMNS = 8  # what plotext's y axis and frame take of the widget's width
COLOURS = {words.RAM: "blue", words.OLLAMA_RSS: "magenta", words.VRAM: "green", words.SHARED: "red"}


def marks_line(marks: tuple[tuple[float, str], ...], columns: int, since: str = "the baseline") -> str:
    """The phase marks as one line under the axis (`s since the baseline: base 0 · load 0.3 · ...`),
    as long as fits `columns`; the vertical lines show where each falls."""
    full = " · ".join(f"{word} {x:.1f}" for x, word in marks)
    short = " ".join(f"{word} {x:.0f}" for x, word in marks)
    return fit([f"s since {since}: {full}", f"s: {full}", f"s: {short}", short], columns)


class MemoryTimelineChart(PlotextPlot):
    """`show_timeline` redraws from a llmtop.measure.timeline.Timeline (GB against seconds)."""

    DEFAULT_CSS = """
    MemoryTimelineChart { height: 14; width: 2fr; display: none; border-top: solid $primary-darken-2; }
    """

    def __init__(
        self,
        *,
        id: str | None = None,
        classes: str | None = None,
        title: str = "memory GB over the run (dots: baseline)",
        since: str = "the baseline",
    ) -> None:
        """`title` and `since` (what the time axis counts from) for other spans than a run's."""
        super().__init__(id=id, classes=classes)
        self.drawn: Timeline | None = None
        self._drawn_width = 0
        self.title = title
        self.since = since

    def on_resize(self) -> None:
        if self.size.width != self._drawn_width:
            self.show_timeline(self.drawn)

    def show_timeline(self, timeline: Timeline | None) -> None:
        """Draw `timeline` (None: nothing measured yet)."""
        if timeline == self.drawn and self.size.width == self._drawn_width:
            return
        self.drawn, self._drawn_width = timeline, self.size.width
        if not self.size.width:  # not laid out yet: drawn once it has its width (on_resize)
            return
        plt = self.plt
        plt.clear_figure()  # every setting too: what is drawn depends on the timeline alone
        if timeline is None or not timeline.series:
            self.border_title = ""
            plt.title("memory: " + ("; ".join(timeline.missing) if timeline else "no run yet"))
            self.refresh()
            return
        # The key is the border's title, in the lines' colours: plotext's legend would sit on the load.
        self.border_title = "  ".join(f"[{COLOURS.get(s.name, 'white')}]{s.name}[/]" for s in timeline.series)
        plt.title(self.title)
        top = 0.0
        for series in timeline.series:
            colour = COLOURS.get(series.name, "white")
            xs = [x for x, _ in series.points]
            ys = [v / GB for _, v in series.points]
            plt.plot(xs, ys, marker="braille", color=colour)
            top = max(top, *ys)
            if series.baseline is not None and xs:
                plt.plot([0.0, max(timeline.end, xs[-1])], [series.baseline / GB] * 2, marker="dot", color=colour)
                top = max(top, series.baseline / GB)
        plt.ylim(0, top * 1.15 or 1)
        plt.xlim(0, math.ceil(timeline.end or 1.0))  # whole seconds: the axis's ticks do not hang on the last sample
        for x, _ in timeline.marks:
            plt.vline(x, "gray")
        plt.xlabel(marks_line(timeline.marks, max(self.size.width - Y_AXIS_COLUMNS, 10), self.since))
        self.refresh()
