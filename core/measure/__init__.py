"""The measurement: a run's session, its settings, the plan and the sweep, and the figures computed
from the samples (summary, energy, comparison, timeline, the machine's facts)."""
