"""Live progress of every app's request on Ollama 0.30 and later, without a proxy: Ollama's
llama-server child listens on 127.0.0.1 at the port its start line names (`starting llama-server
cmd=... --port N`), and its `/slots` tells, per slot, the task it works on, the prompt tokens read and
the tokens decoded so far. llmtop asks it once a second, only on this machine, only while that child
answers, and never sends it anything but `GET /slots`. A child the log says has started and that no
longer answers is not asked again.

Before 0.30 there is no llama-server: the log's loads say so, and watch says that live progress then
needs `--proxy`."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any

from llmtop.collectors.log_watch import LogWatcher
from llmtop.collectors.ollama_log import LoadRecord
from llmtop.data_folder import Failed, attempt
from llmtop.units import NA
from llmtop.watch.state import WatchState

SLOTS_INTERVAL_S = 1.0
SLOTS_TIMEOUT_S = 1.0
NOT_BEFORE_0_30 = (
    f"live progress of requests {NA}: this Ollama runs no llama-server (before 0.30), whose /slots tells it; "
    "--proxy measures each answer"
)
Fetch = Callable[[int], Sequence[dict[str, Any]]]


def fetch_slots(port: int) -> Sequence[dict[str, Any]]:
    """GET http://127.0.0.1:PORT/slots (no proxy, a short timeout); OSError when nothing answers."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://127.0.0.1:{port}/slots", timeout=SLOTS_TIMEOUT_S) as answer:  # noqa: S310
            value = json.loads(answer.read().decode("utf-8", errors="replace"))
    except (ValueError, urllib.error.HTTPError) as exc:
        raise OSError(f"/slots answered no list ({exc})") from None
    if not isinstance(value, list):
        raise OSError("/slots answered no list")
    return [slot for slot in value if isinstance(slot, dict)]


class SlotsPoller:
    """Reads `/slots` of each llama-server the log shows started, into the state."""

    def __init__(
        self,
        state: WatchState,
        log: LogWatcher,
        fetch: Fetch = fetch_slots,
        clock: Callable[[], float] = time.monotonic,
        interval: float = SLOTS_INTERVAL_S,
    ) -> None:
        self.state, self.log, self.fetch, self.clock, self.interval = state, log, fetch, clock, interval
        self.gone: set[tuple[int, int]] = set()  # (load, port) whose child no longer answers
        self.said_not_available = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> SlotsPoller:
        self._thread = threading.Thread(target=self._poll, name="llmtop-watch-slots", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(3.0)

    def servers(self) -> list[LoadRecord]:
        """The loads whose llama-server may still answer: the newest load for each port."""
        newest: dict[int, LoadRecord] = {}
        for load in self.log.loads():
            if load.llama_server and load.server_port is not None:
                newest[load.server_port] = load
        return [load for port, load in newest.items() if (id(load), port) not in self.gone]

    def poll_once(self) -> None:
        loads = self.log.loads()
        if loads and not any(load.llama_server for load in loads) and not self.said_not_available:
            self.said_not_available = True
            self.state.warn(self.clock(), "slots", NOT_BEFORE_0_30)
        for load in self.servers():
            port = load.server_port
            assert port is not None
            try:
                slots = self.fetch(port)
            except OSError:
                if load.runner_started_s is not None:  # it had started (the log said so) and is gone now
                    self.gone.add((id(load), port))  # not asked again
                continue  # still starting: asked again next time
            self.state.observe_slots(self.clock(), load, slots)

    def _poll(self) -> None:
        while not self._stop.is_set():
            polled = attempt(self.poll_once)  # the poller must outlive anything a server answers
            if isinstance(polled, Failed):
                self.state.warn(self.clock(), "slots", f"reading llama-server's /slots failed: {polled.exc}")
            self._stop.wait(self.interval)
