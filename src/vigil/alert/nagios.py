"""Nagios plugin output: the status line and performance data.

Spec: https://nagios-plugins.org/doc/guidelines.html#PLUGOUTPUT. The exit
code is the state (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN); the first line
is the message; performance data follows a ``|`` on the first line and on
any later line, as space-separated ``'label'=value[UOM];[warn];[crit];[min];[max]``.

>>> parse_output("LOAD OK - load average: 0.1 | load1=0.100;5;10;0 'swap free'=80%\\n")
('LOAD OK - load average: 0.1', [Perf(label='load1', value=0.1, unit=''), Perf(label='swap free', value=80.0, unit='%')])
"""

from __future__ import annotations

import dataclasses
import re

# label (quoted with '' as an escaped quote, or bare), '=', value with unit, optional rest.
_PERF = re.compile(
    r"""\s*('(?:[^']|'')+'|[^'=\s][^=\s]*)=([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)([^;\s]*)(;\S*)?"""
)


@dataclasses.dataclass(frozen=True)
class Perf:
    """One performance datum: its label, value and unit of measure."""

    label: str
    value: float
    unit: str


def parse_output(output: str) -> tuple[str, list[Perf]]:
    """The message (the first line's text) and every well-formed performance datum.

    Malformed data is skipped rather than failing the check: the state comes
    from the exit code, and plugins in the wild bend the format.
    """
    lines = [line.rstrip("\r") for line in output.split("\n")]  # plugins end lines with \n only
    message, _, perf = lines[0].partition("|")
    perf_texts = [perf]
    for line in lines[1:]:
        if "|" in line:
            perf_texts.append(line.partition("|")[2])
        elif len(perf_texts) > 1:
            perf_texts.append(line)
    return message.strip(), [p for text in perf_texts for p in parse_perfdata(text)]


def parse_perfdata(text: str) -> list[Perf]:
    """The performance data of one ``label=value...`` list."""
    out: list[Perf] = []
    pos = 0
    while pos < len(text):
        m = _PERF.match(text, pos)
        if m is None:
            nxt = text.find(" ", pos + 1)
            if nxt < 0:
                break
            pos = nxt
            continue
        label = m.group(1)
        if label.startswith("'"):
            label = label[1:-1].replace("''", "'")
        out.append(Perf(label, float(m.group(2)), m.group(3)))
        pos = m.end()
    return out


def format_perfdata(data: list[Perf]) -> str:
    """Performance data as a plugin writes it (labels quoted when needed)."""
    parts = []
    for p in data:
        label = p.label
        if re.search(r"[\s'=]", label) or not label:
            label = "'" + label.replace("'", "''") + "'"
        parts.append(f"{label}={p.value!r}{p.unit}")
    return " ".join(parts)
