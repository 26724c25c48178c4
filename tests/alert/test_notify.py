import asyncio
from pathlib import Path

from tests.alert.receivers import smtp_server, webhook
from vigil.alert.notify import Delivery, Dispatcher, Notice, SendPolicy
from vigil.alert.rules import Notifier
from vigil.telemetry import Telemetry

NOTICE = Notice(
    "api-load", "CRITICAL", "problem",
    ({"target": "servers.web1.load", "state": "CRITICAL", "message": "load = 7 >= 5"},
     {"target": "servers.web2.load", "state": "CRITICAL", "message": "load = 9 >= 5"}),
    1_700_000_000.0,
)  # fmt: skip


def dispatcher(outcomes: list[Delivery], **policy: float) -> Dispatcher:
    async def outcome(d: Delivery) -> None:
        outcomes.append(d)

    return Dispatcher(Telemetry("t"), outcome, SendPolicy(backoff=0.05, **policy))  # type: ignore[arg-type]


async def test_webhook_is_retried_with_backoff_until_it_answers() -> None:
    outcomes: list[Delivery] = []
    d = dispatcher(outcomes)
    async with webhook(fail=2) as hook:
        delivery = await d.deliver(NOTICE, Notifier("hook", "webhook", {"url": hook.url}))
        await d.aclose()
    assert delivery.ok and delivery.attempts == 3 and hook.attempts == 3
    (body,) = hook.bodies
    assert body["rule"] == "api-load" and len(body["alerts"]) == 2  # one notice for the group
    assert body["subject"] == "[Vigil] CRITICAL api-load: servers.web1.load and 1 more (problem)"


async def test_a_webhook_that_never_answers_is_a_recorded_failure() -> None:
    outcomes: list[Delivery] = []
    d = dispatcher(outcomes, attempts=3)
    async with webhook(fail=100) as hook:
        notifier = Notifier("hook", "webhook", {"url": hook.url})
        task = asyncio.create_task(d.run())
        d.submit(NOTICE, notifier)
        await asyncio.wait_for(d.drain(), 10)
        task.cancel()
    (failed,) = outcomes
    assert not failed.ok and failed.attempts == 3 and "HTTP 500" in failed.error
    assert d.sent.labels("hook", "failed")._value.get() == 1


async def test_email_is_delivered_to_a_real_smtp_server() -> None:
    with smtp_server() as (mailbox, address):
        d = dispatcher([])
        notifier = Notifier("mail", "email", {"to": ["oncall@example.com"], "smtp": address,
                                              "from": "vigil@example.com"})  # fmt: skip
        delivery = await d.deliver(NOTICE, notifier)
    assert delivery.ok
    ((sender, recipients, content),) = mailbox.messages
    assert sender == "vigil@example.com" and recipients == ["oncall@example.com"]
    assert b"Subject: [Vigil] CRITICAL api-load" in content and b"servers.web2.load" in content


async def test_command_gets_the_notice_on_stdin(tmp_path: Path) -> None:
    out = tmp_path / "notice.json"
    d = dispatcher([])
    notifier = Notifier(
        "cmd", "command", {"command": f"sh -c 'cat > {out}; echo $VIGIL_STATE >> {out}'"}
    )
    delivery = await d.deliver(NOTICE, notifier)
    assert delivery.ok
    assert '"rule":"api-load"' in out.read_text() and out.read_text().endswith("CRITICAL\n")


async def test_a_full_queue_drops_the_oldest_notice_and_counts_it() -> None:
    d = Dispatcher(Telemetry("t"), lambda d: asyncio.sleep(0), capacity=2)
    notifier = Notifier("cmd", "command", {"command": "true"})
    for _ in range(5):
        d.submit(NOTICE, notifier)
    assert d.dropped._value.get() == 3
