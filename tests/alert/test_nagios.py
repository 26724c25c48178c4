import asyncio
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigil.alert import commands
from vigil.alert.nagios import Perf, format_perfdata, parse_output

PLUGINS = Path("/usr/lib/nagios/plugins")

labels = st.text(
    st.characters(codec="utf-8", exclude_characters="\n\r|\x00", exclude_categories=("Cs",)),
    min_size=1, max_size=20,
).filter(lambda s: s.strip() == s and s.strip())  # fmt: skip
perfs = st.builds(
    Perf,
    labels,
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.sampled_from(["", "s", "ms", "us", "%", "B", "KB", "MB", "TB", "c"]),
)


@given(st.lists(perfs, max_size=8), st.text(alphabet="abc OK-:", max_size=30))
def test_performance_data_round_trips(data: list[Perf], message: str) -> None:
    text = f"{message} | {format_perfdata(data)}\nlong text\n"
    parsed_message, parsed = parse_output(text)
    assert parsed_message == message.strip()
    assert parsed == data


def test_perfdata_on_later_lines_and_thresholds_are_read() -> None:
    output = "DISK OK - free space: / 3326 MB | /=2643MB;5948;5958;0;5968\nline 2\nline 3 | /boot=68MB;88;93;0;98\n/home=69357MB;253404\n"
    message, data = parse_output(output)
    assert message == "DISK OK - free space: / 3326 MB"
    assert data == [Perf("/", 2643, "MB"), Perf("/boot", 68, "MB"), Perf("/home", 69357, "MB")]


def test_malformed_perfdata_is_skipped_not_fatal() -> None:
    assert parse_output("OK | =5 x==1 'unterminated=3 good=1") == ("OK", [Perf("good", 1, "")])
    assert parse_output("") == ("", [])


@pytest.mark.skipif(not PLUGINS.exists(), reason="monitoring-plugins-basic not installed")
async def test_real_plugins_give_state_and_perfdata() -> None:
    load = await commands.run("check_load -w 1000,1000,1000 -c 2000,2000,2000", 10, [str(PLUGINS)])
    assert load.exit == 0
    message, data = parse_output(load.output)
    assert message.startswith("LOAD OK") and {p.label for p in data} >= {"load1", "load5", "load15"}
    crit = await commands.run("check_dummy 2 'disk on fire'", 10, [str(PLUGINS)])
    assert (crit.exit, parse_output(crit.output)[0]) == (2, "CRITICAL: disk on fire")


async def test_a_command_that_hangs_is_killed_at_its_timeout() -> None:
    started = asyncio.get_running_loop().time()
    result = await commands.run("sleep 30", 0.3)
    assert result.exit is None and "timed out" in result.error
    assert asyncio.get_running_loop().time() - started < 5


async def test_a_missing_command_says_so() -> None:
    result = await commands.run("no-such-plugin -w 1", 5, ["/nonexistent"])
    assert result.exit is None and "no-such-plugin: not found" in result.error
    assert not result.ok
