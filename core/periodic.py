"""Background rounds of the core (the host monitor, the system VM watchdog)."""

from __future__ import annotations

import logging
import threading
from typing import Self

log = logging.getLogger("gstack.core")


class PeriodicRounds:
    """A daemon thread calling :meth:`run_once` every ``interval`` seconds until stopped.

    A round that fails (the database briefly away, a host that hangs up) is logged and the next
    round tries again: a background loop of the core must never die.
    """

    thread_name = "periodic"
    first_round_at_start = False

    def __init__(self, interval: float):
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._loop, name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        if not self.first_round_at_start and self._stop.wait(self.interval):
            return
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:
                log.exception("%s round failed", self.thread_name)
            self._stop.wait(self.interval)

    def run_once(self) -> object:
        raise NotImplementedError
