"""Backfill: run extraction rules over stored log entries of a past time range.

A job reads the range in slices (10 minutes by default) through a
``read_entries(start_ms, end_ms)`` function (entries with ``start_ms <= ts <
end_ms``), applies one rule or all, and hands the points to
``write_points``. Its progress can be read at any time from any thread. Jobs
run in their own threads; a failed slice stops the job and says why.

Backfilling a range twice writes its points twice (count metrics then sum to
double): backfill a new rule over the time before it was added.

``cli_backfill``, ``cli_list`` and ``cli_add`` are the client side of
``vigil rules``: they talk to a node's ``/api/rules`` (docs/rules.md).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import sys
import threading
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
from tqdm import tqdm

from vigil.cube.rulebook import RuleBook
from vigil.cube.rules import RuleSet

SLICE_MS = 600_000
# Seconds between two progress requests of ``cli_backfill``.
POLL_SECONDS = 0.5


@dataclasses.dataclass
class Job:
    """The progress of one backfill; ``state`` is ``running``, ``done`` or ``failed``."""

    id: str
    rule: str | None
    start_ms: int
    end_ms: int
    done_ms: int = 0
    entries: int = 0
    points: int = 0
    errors: dict[str, int] = dataclasses.field(default_factory=dict)
    state: str = "running"
    error: str = ""
    started: float = 0.0
    finished: float | None = None

    @property
    def total_ms(self) -> int:
        """The length of the range."""
        return self.end_ms - self.start_ms

    def to_dict(self) -> dict[str, Any]:
        """The progress as JSON-ready data (the API's answer)."""
        doc = dataclasses.asdict(self)
        doc["total_ms"] = self.total_ms
        doc["errors"] = dict(self.errors)
        return doc


class Backfill:
    """Backfill jobs over a node's stored entries; at most ``keep`` finished jobs are kept.

    ``rules`` is a ``RuleBook`` (its rules at the time a job starts) or a
    fixed ``RuleSet``.
    """

    def __init__(
        self,
        rules: RuleBook | RuleSet,
        read_entries: Callable[[int, int], pa.Table],
        write_points: Callable[[pa.Table], None],
        slice_ms: int = SLICE_MS,
        keep: int = 100,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if slice_ms <= 0:
            raise ValueError("slice_ms must be positive")
        self._rules = rules
        self._read = read_entries
        self._write = write_points
        self.slice_ms = slice_ms
        self.keep = keep
        self._clock = clock
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._ids = itertools.count(1)

    def _ruleset(self, rule: str | None) -> RuleSet:
        ruleset = self._rules.ruleset if isinstance(self._rules, RuleBook) else self._rules
        return ruleset.only(rule) if rule is not None else RuleSet(ruleset.rules)

    def start(self, start_ms: int, end_ms: int, rule: str | None = None) -> str:
        """Start a job over ``[start_ms, end_ms)`` for ``rule`` (None: all); returns its id.

        ``KeyError`` when no rule has that name, ``ValueError`` for an empty range.
        """
        if end_ms <= start_ms:
            raise ValueError(f"empty range: until ({end_ms} ms) must be after from ({start_ms} ms)")
        ruleset = self._ruleset(rule)
        with self._lock:
            job = Job(f"bf{next(self._ids)}", rule, start_ms, end_ms, started=self._clock())
            thread = threading.Thread(
                target=self._run, args=(job, ruleset), name=f"backfill-{job.id}", daemon=True
            )
            self._jobs[job.id] = job
            self._threads[job.id] = thread
            self._forget_old()
        thread.start()
        return job.id

    def _forget_old(self) -> None:
        finished = [j for j in self._jobs.values() if j.state != "running"]
        for job in finished[: max(0, len(self._jobs) - self.keep)]:
            del self._jobs[job.id]
            self._threads.pop(job.id, None)

    def _run(self, job: Job, ruleset: RuleSet) -> None:
        at = job.start_ms
        try:
            while at < job.end_ms:
                until = min(at + self.slice_ms, job.end_ms)
                entries = self._read(at, until)
                points, errors = ruleset.apply(entries)
                if points.num_rows:
                    self._write(points)
                with self._lock:
                    job.entries += entries.num_rows
                    job.points += points.num_rows
                    for name, n in errors.items():
                        job.errors[name] = job.errors.get(name, 0) + n
                    job.done_ms = until - job.start_ms
                at = until
        except Exception as e:  # a job reports its failure instead of dying silently
            with self._lock:
                job.state = "failed"
                job.error = f"{type(e).__name__}: {e}"
                job.finished = self._clock()
            return
        with self._lock:
            job.state = "done"
            job.finished = self._clock()

    def job(self, job_id: str) -> dict[str, Any]:
        """The progress of a job; ``KeyError`` for an unknown (or forgotten) id."""
        with self._lock:
            return self._jobs[job_id].to_dict()

    def jobs(self) -> list[dict[str, Any]]:
        """The progress of every job kept, oldest first."""
        with self._lock:
            return [j.to_dict() for j in self._jobs.values()]

    def wait(self, job_id: str, timeout: float | None = None) -> dict[str, Any]:
        """Wait for a job to end (for tests and scripts); returns its progress."""
        with self._lock:
            thread = self._threads.get(job_id)
        if thread is not None:
            thread.join(timeout)
        return self.job(job_id)


class CliError(Exception):
    """A ``vigil rules`` command that cannot go on; the message says why."""


def _client(url: str, http: httpx.Client | None) -> httpx.Client:
    return http if http is not None else httpx.Client(base_url=url.rstrip("/"), timeout=30)


def _call(http: httpx.Client, method: str, path: str, **kwargs: Any) -> Any:
    try:
        r = http.request(method, path, **kwargs)
    except httpx.TransportError as e:
        raise CliError(
            f"cannot reach {http.base_url}: {e or type(e).__name__}; is `vigil serve` running"
            " there? (--url)"
        ) from None
    try:
        answer = r.json()
    except ValueError:
        answer = {"error": r.text[:300]}
    if r.is_error:
        raise CliError(str(answer.get("error", answer)) if isinstance(answer, dict) else answer)
    return answer


def cli_backfill(
    url: str,
    name: str,
    from_: str,
    until: str,
    progress: bool = True,
    http: httpx.Client | None = None,
) -> int:
    """``vigil rules backfill NAME --from --until``: start a backfill and follow it.

    The bar counts seconds of logs done. Exit status 0 when the job is done,
    1 when it failed or could not start. ``http`` is for tests.
    """
    client = _client(url, http)
    try:
        started = _call(
            client, "POST", f"/api/rules/{name}/backfill", json={"from": from_, "until": until}
        )
        job_id = started["job"]
        state = _call(client, "GET", f"/api/rules/backfill/{job_id}")
        with tqdm(
            total=state["total_ms"] // 1000, unit="s", desc=name, disable=not progress
        ) as bar:
            while True:
                bar.update(state["done_ms"] // 1000 - bar.n)
                bar.set_postfix(points=state["points"], refresh=False)
                if state["state"] != "running":
                    break
                time.sleep(POLL_SECONDS)
                state = _call(client, "GET", f"/api/rules/backfill/{job_id}")
    except CliError as e:
        print(f"vigil rules backfill: {e}", file=sys.stderr)
        return 1
    finally:
        if http is None:
            client.close()
    if state["state"] == "failed":
        print(f"backfill {job_id} failed: {state['error']}", file=sys.stderr)
        return 1
    errors = sum(state["errors"].values())
    print(
        f"backfill {job_id}: {state['entries']} entries read, {state['points']} points written"
        + (f", {errors} capture errors" if errors else "")
    )
    return 0


def cli_list(url: str, http: httpx.Client | None = None) -> int:
    """``vigil rules list``: the node's rules with their counters, and rules that did not load."""
    client = _client(url, http)
    try:
        answer = _call(client, "GET", "/api/rules")
    except CliError as e:
        print(f"vigil rules list: {e}", file=sys.stderr)
        return 1
    finally:
        if http is None:
            client.close()
    for rule in answer["rules"]:
        what = rule.get("match") or json.dumps(rule.get("fields", {}))
        errors = sum(rule["errors"].values())
        print(
            f"{rule['name']}\t{rule['source']}\t{rule['metric']}\tvalue={rule['value']}"
            f"\tpoints={rule['points']}\terrors={errors}\t{what}"
        )
    for error in answer["errors"]:
        print(f"error: {error['rule'] or '-'}: {error['error']}", file=sys.stderr)
    return 0


def read_rule_file(path: Path) -> list[Any]:
    """The rules of a TOML file (``[[rule]]`` tables) or a JSON file (one rule or a list)."""
    text = path.read_text()
    if path.suffix == ".json":
        doc = json.loads(text)
        return doc if isinstance(doc, list) else [doc]
    rules = tomllib.loads(text).get("rule", [])
    return rules if isinstance(rules, list) else [rules]


def cli_add(url: str, path: str | Path, http: httpx.Client | None = None) -> int:
    """``vigil rules add FILE``: add the rules of a TOML or JSON file to the node.

    Every rule is tried; exit status 1 if any was refused.
    """
    try:
        docs = read_rule_file(Path(path))
    except (OSError, ValueError, tomllib.TOMLDecodeError) as e:
        print(f"vigil rules add: {path}: {e}", file=sys.stderr)
        return 1
    if not docs:
        print(f"vigil rules add: {path} holds no rule ([[rule]] tables)", file=sys.stderr)
        return 1
    client = _client(url, http)
    status = 0
    try:
        for doc in docs:
            try:
                added = _call(client, "POST", "/api/rules", json=doc)
            except CliError as e:
                print(f"vigil rules add: {e}", file=sys.stderr)
                status = 1
                if str(e).startswith("cannot reach"):
                    break
                continue
            print(f"added {added['name']}")
    finally:
        if http is None:
            client.close()
    return status
