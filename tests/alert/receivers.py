"""Real notification peers on loopback: an HTTP webhook receiver and an SMTP server."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
import uvicorn
from aiosmtpd.controller import Controller
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


class Webhook:
    """Records every JSON body posted to it; answers 500 to the first ``fail`` posts."""

    def __init__(self, fail: int = 0) -> None:
        self.fail = fail
        self.bodies: list[dict[str, Any]] = []
        self.attempts = 0
        self.url = ""
        self.arrived = asyncio.Event()

    async def _hook(self, request: Request) -> Response:
        self.attempts += 1
        if self.attempts <= self.fail:
            return Response("try later", status_code=500)
        self.bodies.append(orjson.loads(await request.body()))
        self.arrived.set()
        return Response("ok")

    async def wait(self, count: int, timeout: float = 10) -> list[dict[str, Any]]:
        """The bodies, once at least ``count`` arrived."""
        async with asyncio.timeout(timeout):
            while len(self.bodies) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.bodies


@contextlib.asynccontextmanager
async def webhook(fail: int = 0) -> AsyncIterator[Webhook]:
    """A webhook receiver on a free loopback port, stopped afterwards."""
    hook = Webhook(fail)
    app = Starlette(routes=[Route("/hook", hook._hook, methods=["POST"])])
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    hook.url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}/hook"
    try:
        yield hook
    finally:
        server.should_exit = True
        await task


class Mailbox:
    """An aiosmtpd handler keeping every message it receives."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def smtp_server() -> Iterator[tuple[Mailbox, str]]:
    """A real SMTP server on loopback; yields its mailbox and HOST:PORT."""
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield mailbox, f"127.0.0.1:{controller.port}"
    finally:
        controller.stop()
