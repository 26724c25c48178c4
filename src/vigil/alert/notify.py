"""Notifications: one per rule, route and round, sent by webhook, e-mail or command.

Sending never blocks evaluation: notices wait in a bounded queue (the oldest
is dropped, and counted, when it is full) and are sent by a few workers that
retry each failure with exponential backoff. The outcome of every notice,
sent or failed with the reason, goes to the ``outcome`` callback, which
records it in the alert history.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import email.message
import email.utils
import logging
import smtplib
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import orjson
from prometheus_client import Counter, Gauge

from vigil.alert import commands
from vigil.alert.rules import Notifier
from vigil.telemetry import Telemetry

log = logging.getLogger("vigil.alert")


@dataclasses.dataclass(frozen=True)
class Notice:
    """What one notification says: a rule's alerts that changed together."""

    rule: str
    state: str
    reason: str  # problem, recovery, repeat, flapping, flap-end, escalation
    alerts: tuple[dict[str, Any], ...]
    ts: float

    @property
    def subject(self) -> str:
        """A one-line summary, for e-mail subjects and command arguments."""
        count = len(self.alerts)
        first = self.alerts[0]["target"] if self.alerts else ""
        more = f" and {count - 1} more" if count > 1 else ""
        return f"[Vigil] {self.state} {self.rule}: {first}{more} ({self.reason})"

    def as_json(self) -> dict[str, Any]:
        """The JSON body a webhook receives and a command reads on stdin."""
        return {
            "rule": self.rule,
            "state": self.state,
            "reason": self.reason,
            "ts": self.ts,
            "subject": self.subject,
            "alerts": list(self.alerts),
        }

    def text(self) -> str:
        """A plain-text body listing every alert."""
        lines = [self.subject, ""]
        for a in self.alerts:
            lines.append(f"{a['state']:<8} {a['target']}: {a['message']}")
        return "\n".join(lines) + "\n"


@dataclasses.dataclass(frozen=True)
class Delivery:
    """How sending a notice to a notifier ended."""

    notice: Notice
    notifier: str
    ok: bool
    attempts: int
    error: str = ""


@dataclasses.dataclass(frozen=True)
class SendPolicy:
    """Retries and limits of sending; the e-mail defaults a notifier may override."""

    attempts: int = 5
    backoff: float = 1.0
    timeout: float = 10.0
    smtp: str = "127.0.0.1:25"
    email_from: str = dataclasses.field(default_factory=lambda: f"vigil@{socket.gethostname()}")


class Dispatcher:
    """Sends notices through notifiers from a bounded queue, with retries."""

    def __init__(
        self,
        telemetry: Telemetry,
        outcome: Callable[[Delivery], Awaitable[None]],
        policy: SendPolicy = SendPolicy(),
        capacity: int = 1000,
        workers: int = 4,
    ) -> None:
        self.policy = policy
        self.outcome = outcome
        self.capacity = capacity
        self.workers = workers
        self._queue: asyncio.Queue[tuple[Notice, Notifier]] = asyncio.Queue()
        self._client: httpx.AsyncClient | None = None  # made by the first webhook
        registry = telemetry.registry
        self.sent = Counter(
            "vigil_alert_notifications", "Notifications by notifier and result",
            ["notifier", "result"], registry=registry,
        )  # fmt: skip
        self.dropped = Counter(
            "vigil_alert_notifications_dropped",
            "Notices dropped because the notification queue was full",
            registry=registry,
        )
        Gauge(
            "vigil_alert_notify_queue", "Notices waiting to be sent", registry=registry
        ).set_function(self._queue.qsize)

    def submit(self, notice: Notice, notifier: Notifier) -> None:
        """Queue a notice; when the queue is full the oldest waiting notice goes."""
        if self._queue.qsize() >= self.capacity:
            with contextlib.suppress(asyncio.QueueEmpty):
                self._queue.get_nowait()
                self._queue.task_done()
                self.dropped.inc()
        self._queue.put_nowait((notice, notifier))

    async def run(self) -> None:
        """Send until cancelled."""
        try:
            await asyncio.gather(*(self._work() for _ in range(self.workers)))
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP connections of webhooks."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def drain(self) -> None:
        """Wait until every queued notice has been sent or given up."""
        await self._queue.join()

    async def _work(self) -> None:
        while True:
            notice, notifier = await self._queue.get()
            try:
                delivery = await self.deliver(notice, notifier)
                self.sent.labels(notifier.name, "sent" if delivery.ok else "failed").inc()
                await self.outcome(delivery)
            except Exception:  # a bug in one notice must not stop the workers
                log.exception("notification to %s failed", notifier.name)
            finally:
                self._queue.task_done()

    async def deliver(self, notice: Notice, notifier: Notifier) -> Delivery:
        """Send with retries and exponential backoff; the last error if all fail."""
        attempts = int(notifier.options.get("attempts", self.policy.attempts))
        backoff = float(notifier.options.get("retry_backoff", self.policy.backoff))
        error = ""
        for attempt in range(1, attempts + 1):
            try:
                await self._send(notice, notifier)
                return Delivery(notice, notifier.name, True, attempt)
            except Exception as e:  # every failure of a notifier is retried
                error = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
                log.warning("notifier %s, attempt %d: %s", notifier.name, attempt, error)
            if attempt < attempts:
                self.sent.labels(notifier.name, "retried").inc()
                await asyncio.sleep(backoff * 2 ** (attempt - 1))
        return Delivery(notice, notifier.name, False, attempts, error)

    async def _send(self, notice: Notice, notifier: Notifier) -> None:
        timeout = float(notifier.options.get("timeout") or self.policy.timeout)
        if notifier.type == "webhook":
            self._client = self._client or httpx.AsyncClient()
            response = await self._client.post(
                str(notifier.options["url"]),
                content=orjson.dumps(notice.as_json()),
                headers={"content-type": "application/json"},
                timeout=timeout,
            )
            if response.status_code >= 300:
                raise RuntimeError(f"webhook answered HTTP {response.status_code}")
        elif notifier.type == "email":
            await asyncio.to_thread(self._mail, notice, notifier, timeout)
        else:
            result = await commands.run(
                str(notifier.options["command"]),
                timeout,
                stdin=orjson.dumps(notice.as_json()),
                env={"VIGIL_RULE": notice.rule, "VIGIL_STATE": notice.state,
                     "VIGIL_SUBJECT": notice.subject},
            )  # fmt: skip
            if not result.ok:
                raise RuntimeError(f"{result.describe()}: {result.output.strip()[:200]}")

    def _mail(self, notice: Notice, notifier: Notifier, timeout: float) -> None:
        options = notifier.options
        host, _, port = str(options.get("smtp", self.policy.smtp)).rpartition(":")
        msg = email.message.EmailMessage()
        msg["Subject"] = notice.subject
        msg["From"] = str(options.get("from", self.policy.email_from))
        msg["To"] = ", ".join(options["to"])
        msg["Date"] = email.utils.formatdate(notice.ts or time.time())
        msg.set_content(notice.text())
        with smtplib.SMTP(host or "127.0.0.1", int(port or 25), timeout=timeout) as smtp:
            if options.get("starttls"):
                smtp.starttls()
            if options.get("user"):
                smtp.login(str(options["user"]), str(options.get("password", "")))
            smtp.send_message(msg)
