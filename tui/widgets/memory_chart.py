"""The memory timeline (plotext): RAM, Ollama's resident memory, VRAM and shared GPU memory over a run,
each with its baseline as a flat line of its colour, and the phases marked on the time axis."""

from __future__ import annotations

from textual_plotext import PlotextPlot

from llmtop.timeline import Timeline

GB = 1e9
COLOURS = {"RAM": "blue", "Ollama RSS": "magenta", "VRAM": "green", "shared": "red"}


def axis_marks(marks: tuple[tuple[float, str], ...], span: float) -> list[tuple[float, str]]:
    """The phase marks as axis labels; marks closer than a tenth of the span share one label
    (`load/prompt`) so that no two labels are drawn over each other."""
    merged: list[tuple[float, str]] = []
    for x, word in marks:
        if merged and x - merged[-1][0] < span / 10:
            merged[-1] = (merged[-1][0], f"{merged[-1][1]}/{word}")
        else:
            merged.append((x, word))
    return merged


class MemoryTimelineChart(PlotextPlot):
    """`show_timeline` redraws from a llmtop.timeline.Timeline (GB against seconds)."""

    DEFAULT_CSS = """
    MemoryTimelineChart { height: 14; width: 2fr; display: none; border-top: solid $primary-darken-2; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.drawn: Timeline | None = None

    def show_timeline(self, timeline: Timeline | None) -> None:
        """Draw `timeline` (None: nothing measured yet)."""
        if timeline == self.drawn:
            return
        self.drawn = timeline
        plt = self.plt
        plt.clear_figure()  # every setting too: what is drawn depends on the timeline alone
        if timeline is None or not timeline.series:
            self.border_title = ""
            plt.title("memory: " + ("; ".join(timeline.missing) if timeline else "no run yet"))
            self.refresh()
            return
        # The key is the border's title, in the lines' colours: plotext's legend would sit on the load.
        self.border_title = "  ".join(f"[{COLOURS.get(s.name, 'white')}]{s.name}[/]" for s in timeline.series)
        plt.title("memory GB over the run (dots: baseline)")
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
        span = timeline.end or 1.0
        marks = axis_marks(timeline.marks, span)
        for x, _ in marks:
            plt.vline(x, "gray")
        if marks:
            plt.xticks([x for x, _ in marks], [f"{word} {x:.0f}" for x, word in marks])
        plt.xlabel("s since the baseline")
        self.refresh()
