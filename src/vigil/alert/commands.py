"""Running a command (a Nagios plugin, a heal, a notifier) with a time limit.

Commands are split like a shell would (``shlex``) but run without one, so a
rule's text cannot inject a second command; write ``sh -c '...'`` for pipes.
Output is capped so a chatty command cannot fill memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shlex
import shutil
from collections.abc import Mapping, Sequence

MAX_OUTPUT = 64 << 10


@dataclasses.dataclass(frozen=True)
class CommandResult:
    """How a command ended: ``exit`` is None when it could not run or timed out."""

    exit: int | None
    output: str
    error: str = ""

    @property
    def ok(self) -> bool:
        """Whether the command ran and exited 0."""
        return self.exit == 0

    def describe(self) -> str:
        """One line for history: the exit status or the failure."""
        return self.error or f"exit {self.exit}"


def resolve(command: str, search: Sequence[str] = ()) -> list[str]:
    """The argv of ``command``; a bare program name is also looked up in ``search``.

    Raises ``ValueError`` when the command does not parse or is not found.
    """
    argv = shlex.split(command)
    if not argv:
        raise ValueError("empty command")
    if "/" not in argv[0]:
        path = os.pathsep.join([*search, os.environ.get("PATH", os.defpath)])
        found = shutil.which(argv[0], path=path)
        if found is None:
            raise ValueError(f"{argv[0]}: not found in {path}")
        argv[0] = found
    return argv


async def run(
    command: str,
    timeout: float,
    search: Sequence[str] = (),
    stdin: bytes | None = None,
    env: Mapping[str, str] | None = None,
) -> CommandResult:
    """Run ``command``; stdout and stderr together, at most ``MAX_OUTPUT`` bytes."""
    try:
        argv = resolve(command, search)
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, **env} if env else None,
            start_new_session=True,
        )
    except (ValueError, OSError) as e:
        return CommandResult(None, "", f"cannot run {command!r}: {e}")
    try:
        out, _ = await asyncio.wait_for(proc.communicate(stdin), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)
        await proc.wait()
        return CommandResult(None, "", f"timed out after {timeout:g}s")
    return CommandResult(proc.returncode, out[:MAX_OUTPUT].decode("utf-8", "replace"))
