"""Resource figures of a server process tree and its data directory, read from /proc.

CPU-seconds are the fairest figure on a shared, noisy machine: a server that
waits for a busy core burns no CPU while it waits, so CPU-seconds per point
stay put while wall-clock rates swing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Collection
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    """Return the fields of /proc/<pid>/stat after the command name (field 3 onwards)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()


def tree(pid: int) -> list[int]:
    """Return ``pid`` and all its live descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            ppid = int(_stat_fields(int(entry))[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(children.get(p, []))
    return found


def cpu_seconds(pid: int) -> float:
    """Return utime+stime of the process tree, including reaped children (cutime+cstime).

    Take it before and after a phase and subtract. A child that exited and
    was not yet reaped by its parent is missed until the parent waits for it.
    """
    ticks = 0
    for p in tree(pid):
        try:
            f = _stat_fields(p)
        except OSError:
            continue
        # Fields 14-17 of stat(5): utime stime cutime cstime (index 11.. here).
        ticks += sum(int(x) for x in f[11:15])
    return ticks / _TICKS


def wait_idle(
    pid: int, window: float = 1.0, busy: float = 0.03, limit: float = 60.0
) -> tuple[float, float]:
    """Wait until the process tree spends under ``busy`` of a core over ``window`` seconds.

    Returns (CPU-seconds of the tree when it went idle, seconds waited); gives
    up after ``limit`` seconds. What a server still does after it answered
    (an engine's background merges) is work the payload caused: a CPU figure
    taken at the answer leaves it out, unequally when one run answers later.
    """
    start = time.monotonic()
    before = cpu_seconds(pid)
    while True:
        time.sleep(window)
        now = cpu_seconds(pid)
        if now - before < busy * window or time.monotonic() - start > limit:
            return now, time.monotonic() - start
        before = now


def peak_rss_bytes(pid: int) -> int:
    """Return the sum of VmHWM (peak resident set) over the live process tree.

    For a tree this is an upper bound: the members' peaks need not coincide.
    """
    total = 0
    for p in tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) * 1024
                    break
        except OSError:
            continue
    return total


def disk_usage(path: Path, exclude: Collection[str] = ()) -> tuple[int, int]:
    """Return (allocated, apparent) bytes under ``path``, like ``du -s -B1`` and ``du -sb``.

    Allocated counts whole filesystem blocks, which is what the data really
    costs; hard links are counted once. ``exclude`` names top-level entries
    of ``path`` to leave out.
    """
    allocated = apparent = 0
    seen: set[tuple[int, int]] = set()
    for root, dirs, files in os.walk(path):
        if root == str(path):
            dirs[:] = [d for d in dirs if d not in exclude]
            files = [f for f in files if f not in exclude]
        for name in dirs + files:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            key = (st.st_dev, st.st_ino)
            if key in seen:
                continue
            seen.add(key)
            allocated += st.st_blocks * 512
            if name in files:
                apparent += st.st_size
    return allocated, apparent
