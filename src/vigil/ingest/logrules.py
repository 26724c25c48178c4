"""The stated rules for bad log input (docs/formats/eventlog.md, "Rules for bad input")."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class LogRules:
    """Limits every log parser applies; protocols with acks reject, syslog repairs."""

    max_entry_bytes: int = 256 << 10
    future_seconds: int = 600
    past_seconds: int = 7 * 86400

    def ts_window_ms(self, now_ms: int) -> tuple[int, int]:
        """The accepted ``ts`` range in epoch milliseconds, both ends inclusive."""
        return now_ms - self.past_seconds * 1000, now_ms + self.future_seconds * 1000
