"""The sweep's chart (plotext): tokens/s by GPU layers (or context) over the limit each split has, with
dedicated VRAM and shared GPU memory on the same x axis, Ollama's choice and the fastest point marked."""

from __future__ import annotations

from typing import Any

from textual_plotext import PlotextPlot

from llmtop import words

GB = 1e9


class SweepChart(PlotextPlot):
    """`show_result` redraws from a llmtop.measure.sweep.SweepResult; tps on the left axis, GB on the right."""

    DEFAULT_CSS = """
    SweepChart { height: 14; width: 2fr; display: none; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.drawn: Any = None

    def show_result(self, result: Any) -> None:
        """Draw the points measured so far (a SweepResult)."""
        key = None if result is None else [p.to_dict() for p in result.points]
        if key == self.drawn:
            return
        self.drawn = key
        plt = self.plt
        plt.clear_figure()  # every setting too: what is drawn depends on the points alone
        parameter = "num_gpu" if result is None else result.spec.parameter
        plt.xlabel(
            {"num_ctx": "context (tokens)", "moe": "layers whose experts are in system memory"}.get(
                parameter, "GPU layers"
            )
        )
        points = [p for p in (result.points if result else ()) if p.x is not None]
        measured = [p for p in points if p.tps is not None]
        if not points:
            plt.title("sweep: no point measured yet")
            self.refresh()
            return
        marks = []
        if result.ollama_choice is not None and result.ollama_choice.x is not None:
            marks.append(f"Ollama's choice {result.ollama_choice.x}")
        if result.best is not None and result.best.x is not None:
            marks.append(f"fastest {result.best.x}")
        plt.title("tokens/s (left) and GPU memory GB (right)" + (": " + ", ".join(marks) if marks else ""))
        curve = getattr(result, "forecast", ())
        if curve:  # the limit each split has, from the sweep's own ends, under the measured points
            plt.plot([x for x, _ in curve], [tps for _, tps in curve], marker="braille", color="gray", label="limit")
        if measured:
            plt.plot([p.x for p in measured], [p.tps for p in measured], marker="dot", color="blue", label="tps")
            top = max([p.tps or 0.0 for p in measured] + [tps for _, tps in curve])
            plt.ylim(0, top * 1.15 or 1)
        for figure, colour, label in (("vram_bytes", "green", words.VRAM), ("shared_bytes", "red", words.SHARED)):
            read = [p for p in measured if getattr(p, figure) is not None]
            if read:
                plt.plot(
                    [p.x for p in read],
                    [getattr(p, figure) / GB for p in read],
                    marker="dot",
                    color=colour,
                    label=label,
                    yside="right",
                )
        failed = [p for p in points if p.tps is None]
        if failed:
            plt.scatter([p.x for p in failed], [0.0] * len(failed), marker="x", color="red", label="failed")
        if result.ollama_choice is not None and result.ollama_choice.x is not None:
            plt.vline(result.ollama_choice.x, "orange")
        if result.best is not None and result.best.x is not None:
            plt.vline(result.best.x, "green")
        self.refresh()
