"""Counting and logging of rejected input, per protocol and reason.

Every reject is counted (``vigil_ingest_rejected_total``); logging is rate
limited per reason so that a flood of bad lines cannot flood the log, and
each log line carries an example of the input.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from prometheus_client import Counter

from vigil.model import Reject
from vigil.telemetry import Telemetry

log = logging.getLogger("vigil.ingest")


class RejectLog:
    """Counts rejects and logs at most ``per_minute`` examples per reason."""

    def __init__(
        self, telemetry: Telemetry, per_minute: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self.counter = Counter(
            "vigil_ingest_rejected",
            "Input records rejected, by protocol and reason.",
            ["protocol", "reason"],
            registry=telemetry.registry,
        )
        self._window: dict[tuple[str, str], tuple[float, int]] = {}

    def record(self, protocol: str, rejects: Iterable[Reject]) -> None:
        """Count ``rejects`` and log examples within the rate limit."""
        now = self.clock()
        for reject in rejects:
            self.counter.labels(protocol, reject.reason).inc(reject.count)
            key = (protocol, reject.reason)
            started, logged = self._window.get(key, (now, 0))
            if now - started >= 60:
                started, logged = now, 0
            if logged < self.per_minute:
                log.warning(
                    "%s: rejected %d line(s): %s; example: %r",
                    protocol, reject.count, reject.reason, reject.sample,
                )  # fmt: skip
                logged += 1
            self._window[key] = (started, logged)
