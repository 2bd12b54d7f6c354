"""The power panel: a gauge per power source (watts, its last seconds as a sparkline, Δ over the
baseline's idle power), n/a with the reason for each kind not measured, and the energy line."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical

from llmtop import units
from llmtop.measure.screen_states import PowerState
from llmtop.tui.widgets.gauge import Gauge
from llmtop.tui.widgets.text_line import TextLine


def power_gauge(label: str = "Power") -> Gauge:
    return Gauge(label, unit=units.watts, delta_unit=units.signed_watts)


class PowerPanel(Vertical):
    """As many gauges as sources (more are added as they appear, spare ones hidden); the energy
    line is hidden while it has nothing to say, so it takes no row."""

    DEFAULT_CSS = """
    PowerPanel { height: auto; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.drawn: PowerState | None = None
        self.gauges: list[Gauge] = []

    def compose(self) -> ComposeResult:
        self.gauges.append(power_gauge())
        yield self.gauges[0]
        yield TextLine(id="energy")

    @property
    def energy_line(self) -> TextLine:
        return self.query_one("#energy", TextLine)

    def show(self, state: PowerState) -> None:
        """Draw `state` (nothing when it is the one drawn last)."""
        if state == self.drawn:
            return
        self.drawn = state
        energy = self.energy_line
        while len(self.gauges) < len(state.gauges):
            gauge = power_gauge()
            self.mount(gauge, before=energy)
            self.gauges.append(gauge)
        for gauge in self.gauges[len(state.gauges) :]:
            gauge.display = False
        for gauge, gauge_state in zip(self.gauges, state.gauges, strict=False):
            gauge.display = True
            gauge.show_state(gauge_state)
        shown = bool(state.energy[0])
        if energy.display != shown:  # no empty row where nothing is measured
            energy.display = shown
        energy.show(*state.energy)
