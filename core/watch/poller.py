"""The threads and listeners that feed a watched server's state from outside the log and the proxy:
the `/api/ps` poller, and the warning of a spill into shared GPU memory."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from llmtop.collectors.gpu_reading import GpuSample
from llmtop.data_folder import Failed, attempt
from llmtop.measure.summary import is_spill
from llmtop.ollama.api import PS_INTERVAL_S, OllamaError, OllamaServer
from llmtop.watch.state import WatchState


class PsPoller:
    """Polls one server's `/api/ps` (and its version, once) every PS_INTERVAL_S into its state."""

    def __init__(
        self,
        base_url: str,
        state: WatchState | None = None,
        clock: Callable[[], float] = time.monotonic,
        headers: dict[str, str] | None = None,
        cacert: str | None = None,
    ) -> None:
        self.base_url = base_url
        self.state = state or WatchState()
        self.server = OllamaServer(base_url, headers=headers, cacert=cacert)
        self.clock = clock
        self.polled = threading.Event()  # set once the first answer (or failure) is in the state
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.version: str | None = None

    def start(self) -> PsPoller:
        self._thread = threading.Thread(target=self._poll, name="llmtop-watch-ps", daemon=True)
        self._thread.start()
        return self

    def _poll(self) -> None:
        while not self._stop.is_set():
            polled = attempt(self._poll_once)  # the poller must outlive anything the server answers
            if isinstance(polled, Failed):
                failed = polled.exc
                self.state.server_down(self.clock(), str(failed) if isinstance(failed, OllamaError) else polled.text)
            self.polled.set()
            self._stop.wait(PS_INTERVAL_S)

    def _poll_once(self) -> None:
        if self.version is None:
            self.version = self.server.version()
        models = self.server.ps().get("models") or []
        self.state.observe_ps(self.clock(), models)  # the time of the answer, not of the question

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(3.0)
        self.server.close()


class SpillWarning:
    """A GPU sampler's listener: warns once when shared GPU memory grows by a spill (is_spill) over its
    level while no model was loaded."""

    def __init__(self, state: WatchState) -> None:
        self.state = state
        self.base: int | None = None
        self.warned = False

    def __call__(self, sample: GpuSample) -> None:
        shared = sum(g.shared_used for g in sample.gpus if g.shared_used is not None)
        if not self.state.loaded:
            self.base, self.warned = shared, False
            return
        if self.base is not None and not self.warned and is_spill(shared - self.base):
            self.warned = True
            grown = (shared - self.base) / 1e9
            self.state.warn(
                sample.t, "spill", f"shared GPU memory grew {grown:.1f} GB over its level before the load: the model "
                "is spilling out of VRAM into system RAM"
            )  # fmt: skip
