"""The UI's sources never turn data into markup: no innerHTML and friends anywhere in ui/."""

from __future__ import annotations

import re
from pathlib import Path

UI = Path(__file__).resolve().parents[3] / "ui"
MARKUP_SINKS = re.compile(
    r"\.innerHTML|\.outerHTML|insertAdjacentHTML|document\.write|createContextualFragment|"
    r"DOMParser|\beval\(|new Function\("
)


def test_ui_sources_have_no_markup_sinks() -> None:
    sources = sorted(UI.glob("*.js"))
    assert sources, f"no UI sources in {UI}"
    found = [
        f"{path.name}:{n}: {line.strip()}"
        for path in sources
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if MARKUP_SINKS.search(line) and not line.lstrip().startswith("//")
    ]
    assert not found, "data must go in as text (ui/dom.js h()), not markup:\n" + "\n".join(found)
