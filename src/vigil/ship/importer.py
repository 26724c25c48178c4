"""``vigil logs import``: load existing log files into a running Vigil over HTTP.

Files (plain or gzipped, as rotated logs are) are read by
``vigil.ship.logfile`` and posted in batches as JSON lines to
``POST /api/logs`` (``docs/formats/eventlog.md``). A 503 means the node's
bus is full for now: the batch is retried with backoff. A 413 means the
batch is over the node's body limit: it is split in two. Rejected entries
are reported with the file and line they came from.
"""

from __future__ import annotations

import argparse
import dataclasses
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson
from tqdm import tqdm

from vigil.ship.logfile import LogFileError, open_log, parse_lines

# Errors kept in the report; the rest are only counted.
MAX_ERRORS = 10
# A batch is posted once it holds this many bytes, whatever ``batch_entries`` says.
_BATCH_BYTES = 4 << 20
# Attempts per batch while the node answers 503 (about a minute and a half) or
# cannot be reached (a few seconds).
_BUSY_ATTEMPTS = 12
_UNREACHABLE_ATTEMPTS = 4
_MAX_DELAY = 10.0


class ImportFailed(Exception):
    """The import cannot go on (node unreachable or refusing); the message says why."""


@dataclasses.dataclass
class ImportReport:
    """What an import did: files read, entries read, accepted and rejected by the node.

    ``errors`` holds the first ``MAX_ERRORS`` problems as ``file:line: reason``
    (or ``file: reason`` for a file that could not be read to its end).
    """

    files: int = 0
    entries: int = 0
    accepted: int = 0
    rejected: int = 0
    unreadable: int = 0
    errors: list[str] = dataclasses.field(default_factory=list)

    def note(self, error: str) -> None:
        """Keep ``error`` if there is room for it."""
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(error)

    def summary(self) -> str:
        """The report as a few lines of text for the terminal."""
        text = (
            f"{self.files} file(s): {self.entries} entries read,"
            f" {self.accepted} accepted, {self.rejected} rejected"
        )
        if self.unreadable:
            text += f"; {self.unreadable} file(s) not read to the end"
        shown = "".join(f"\n  {e}" for e in self.errors)
        hidden = self.rejected + self.unreadable - len(self.errors)
        more = f"\n  ... and {hidden} more" if hidden > 0 else ""
        return text + shown + more


@dataclasses.dataclass
class _Batch:
    """Encoded entries waiting to be posted, with the file line each came from."""

    lines: list[bytes] = dataclasses.field(default_factory=list)
    origins: list[int] = dataclasses.field(default_factory=list)
    size: int = 0

    def add(self, line_no: int, entry: dict[str, Any]) -> None:
        encoded = orjson.dumps(entry) + b"\n"
        self.lines.append(encoded)
        self.origins.append(line_no)
        self.size += len(encoded)


def default_app(path: Path) -> str:
    """The application named by a log file: its name up to the first dot.

    >>> default_app(Path("/var/log/nginx/access.log.2.gz"))
    'access'
    """
    return path.name.split(".", 1)[0] or path.name


def import_files(
    base_url: str,
    paths: Sequence[Path],
    *,
    host: str,
    app: str,
    batch_entries: int = 5000,
    progress: bool = True,
    retry_delay: float = 0.5,
    transport: httpx.BaseTransport | None = None,
) -> ImportReport:
    """Post the entries of ``paths`` to the node at ``base_url``; raise ``ImportFailed``
    when the node cannot be reached or refuses for good.

    ``host`` and ``app`` fill entries that name none; an empty ``app`` means
    each file's ``default_app``. The progress bar counts input bytes
    (compressed bytes for gzipped files). ``transport`` is for tests.
    """
    report = ImportReport()
    total = sum(_size(p) for p in paths)
    with (
        httpx.Client(base_url=base_url.rstrip("/"), timeout=120, transport=transport) as http,
        tqdm(
            total=total, unit="B", unit_scale=True, unit_divisor=1024, disable=not progress
        ) as bar,
    ):
        poster = _Poster(http, report, retry_delay)
        for path in paths:
            report.files += 1
            bar.set_description(path.name)
            try:
                _import_file(path, host, app or default_app(path), batch_entries, poster, bar)
            except OSError as e:
                report.unreadable += 1
                report.note(f"{path}: {e.strerror or e}")
    return report


def _import_file(
    path: Path, host: str, app: str, batch_entries: int, poster: _Poster, bar: tqdm[Any]
) -> None:
    """Read and post one file; a damaged gzip stream still ships the lines before the damage."""
    mtime = path.stat().st_mtime
    with open_log(path) as (raw, lines):
        batch = _Batch()
        done = 0
        try:
            for line_no, entry in parse_lines(lines, default_ts=mtime, host=host, app=app):
                poster.report.entries += 1
                batch.add(line_no, entry)
                if len(batch.lines) >= batch_entries or batch.size >= _BATCH_BYTES:
                    poster.post(path, batch)
                    batch = _Batch()
                    bar.update(raw.tell() - done)
                    done = raw.tell()
        except LogFileError as e:
            poster.report.unreadable += 1
            poster.report.note(str(e))
        poster.post(path, batch)
        bar.update(raw.tell() - done)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


class _Poster:
    """Posts batches to ``/api/logs`` and books the answers in the report."""

    def __init__(self, http: httpx.Client, report: ImportReport, retry_delay: float) -> None:
        self.http = http
        self.report = report
        self.retry_delay = retry_delay

    def post(self, path: Path, batch: _Batch) -> None:
        """Post ``batch``, split in halves for as long as the node finds it too large."""
        if not batch.lines:
            return
        response = self._send(b"".join(batch.lines))
        if response is None:  # 413: too large
            if len(batch.lines) == 1:
                self.report.rejected += 1
                self.report.note(f"{path}:{batch.origins[0]}: entry larger than the node accepts")
                return
            half = len(batch.lines) // 2
            for part in (slice(None, half), slice(half, None)):
                lines, origins = batch.lines[part], batch.origins[part]
                self.post(path, _Batch(lines, origins, sum(map(len, lines))))
            return
        self.report.accepted += int(response.get("accepted", 0))
        for reject in response.get("rejected", []):
            self.report.rejected += 1
            index = int(reject.get("line", 0)) - 1
            line = batch.origins[index] if 0 <= index < len(batch.origins) else "?"
            self.report.note(f"{path}:{line}: {reject.get('error', 'rejected')}")

    def _send(self, body: bytes) -> dict[str, Any] | None:
        """The node's answer to ``body``, or None when it is too large.

        A busy node (503) is waited for longer than an unreachable one: a busy
        node is working, an unreachable one is most often not started.
        """
        delay = self.retry_delay
        url = str(self.http.base_url).rstrip("/") + "/api/logs"
        busy = unreachable = 0
        while True:
            try:
                r = self.http.post(
                    "/api/logs", content=body, headers={"content-type": "application/x-ndjson"}
                )
            except httpx.TransportError as e:
                unreachable += 1
                if unreachable >= _UNREACHABLE_ATTEMPTS:
                    raise ImportFailed(
                        f"cannot reach {url}: {e or type(e).__name__}; is `vigil serve` running"
                        " there? (--url)"
                    ) from None
            else:
                if r.status_code == 413:
                    return None
                if r.status_code != 503:
                    if r.is_error:
                        raise ImportFailed(f"{url} answered {r.status_code}: {r.text[:300]}")
                    answer: dict[str, Any] = r.json()
                    return answer
                busy += 1
                if busy >= _BUSY_ATTEMPTS:
                    raise ImportFailed(
                        f"{url} stayed busy (503: {r.text[:300]}) for {_BUSY_ATTEMPTS} attempts;"
                        " try again later"
                    )
            time.sleep(delay)
            delay = min(delay * 2, _MAX_DELAY)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``vigil logs import`` to ``parser``."""
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="log file (.gz too)")
    parser.add_argument(
        "--url",
        default="http://127.0.0.1:8080",
        help="the node's HTTP address (default: %(default)s)",
    )
    parser.add_argument(
        "--host", default=None, help="host of entries that name none (default: this machine's name)"
    )
    parser.add_argument(
        "--app",
        default="",
        help="application of entries that name none (default: the file name up to its first dot)",
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=5000,
        metavar="N",
        help="entries per request (default: %(default)s)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Import the files, print the report; 1 if anything was rejected or unreadable, 2 if
    the import could not finish."""
    if args.batch < 1:
        print("vigil logs import: --batch must be at least 1", file=sys.stderr)
        return 2
    try:
        report = import_files(
            args.url,
            args.files,
            host=args.host or socket.gethostname(),
            app=args.app,
            batch_entries=args.batch,
            progress=not args.no_progress,
        )
    except ImportFailed as e:
        print(f"vigil logs import: {e}", file=sys.stderr)
        return 2
    print(report.summary())
    return 1 if report.rejected or report.unreadable else 0
