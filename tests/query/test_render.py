"""The render request: parameters, graphite-web consolidation, and the three encodings."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.query.memsource import MemorySource
from vigil.query.errors import RenderError
from vigil.query.render import (
    RenderRequest,
    consolidate,
    encode_csv,
    encode_json,
    encode_raw,
    render,
)
from vigil.query.series import Series
from vigil.query.timeparse import UTC, parse_timezone

NOW = 1_700_000_040  # a multiple of 60: fetches start on it


@dataclasses.dataclass(frozen=True)
class Limits:
    max_series: int = 100
    max_points: int = 1000


def _request(**params: str | list[str]) -> RenderRequest:
    return RenderRequest.from_params(
        {k: v if isinstance(v, list) else [v] for k, v in params.items()}, now=NOW
    )


def test_request_defaults() -> None:
    req = _request(target="a.b")
    # until=now takes in the current second, so a point written now is seen.
    assert req == RenderRequest(("a.b",), NOW - 86400, NOW + 1, NOW, "json", None, False, UTC)


def test_request_parses_every_parameter() -> None:
    req = _request(
        target=["a.b", "  ", "sumSeries(c.*)"],
        **{"from": "-1h", "until": "now-10min", "now": "1700003640"},
        format="csv",
        maxDataPoints="500.0",
        noNullPoints="true",
        tz="Europe/Paris",
    )
    assert req.targets == ("a.b", "sumSeries(c.*)")
    assert (req.start, req.end, req.now) == (1_700_000_040, 1_700_003_040, 1_700_003_640)
    assert (req.format, req.max_data_points, req.no_null_points) == ("csv", 500, True)
    assert req.tz == parse_timezone("Europe/Paris")


def test_request_swaps_reversed_range_and_reads_raw_data() -> None:
    req = _request(target="a", **{"from": "-1h", "until": "-2h"}, rawData="")
    assert (req.start, req.end, req.format) == (NOW - 7200, NOW - 3600, "raw")
    assert _request(noNullPoints="").no_null_points
    assert not _request(noNullPoints="0").no_null_points


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"format": "png"}, "unknown format 'png': use one of json, csv, raw"),
        ({"maxDataPoints": "lots"}, "bad maxDataPoints 'lots'"),
        ({"maxDataPoints": "0"}, "bad maxDataPoints '0'"),
        ({"noNullPoints": "maybe"}, "bad noNullPoints 'maybe'"),
        ({"from": "-1h", "until": "-60min"}, "empty time range"),
        ({"from": "yesterdayish"}, "bad time 'yesterdayish'"),
        ({"tz": "Nowhere/Land"}, "unknown time zone 'Nowhere/Land'"),
    ],
)
def test_bad_request(params: dict[str, str], message: str) -> None:
    with pytest.raises(RenderError) as err:
        _request(target="a", **params)
    assert message in str(err.value)


def _series(values: list[float | None], start: int = 600, step: int = 60, **kw: object) -> Series:
    return Series("a", start, step, np.array([np.nan if v is None else v for v in values]), **kw)


def _points(s: Series, max_data_points: int | None) -> list[list[float | int | None]]:
    (grid,) = consolidate([s], max_data_points)
    return [
        [None if math.isnan(v) else v, t]
        for v, t in zip(grid.values.tolist(), grid.stamps.tolist(), strict=True)
    ]


def test_consolidation_follows_graphite_web() -> None:
    # 10 points from t=600, step 60, maxDataPoints=3: valuesPerPoint=ceil(10/3)=4,
    # 240 s buckets; nudge = 240 + 0 - 600 % 240 = 120 so the first stamp is 720,
    # and graphite-web drops nudge/step - 1 = 1 value: buckets are
    # [2,3,4,5] [6,7,8,9] [10], stamped 720, 960, 1200.
    s = _series([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    assert _points(s, 3) == [[3.5, 720], [7.5, 960], [10.0, 1200]]
    assert _points(s, 10) == [[float(v), 600 + 60 * (v - 1)] for v in range(1, 11)]
    assert _points(s, 1) == [[5.5, 600]]


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("average", [3.5, None, 10.0]),
        ("avg", [3.5, None, 10.0]),
        ("sum", [14.0, None, 10.0]),
        ("min", [2.0, None, 10.0]),
        ("max", [5.0, None, 10.0]),
        ("first", [2.0, None, 10.0]),
        ("last", [5.0, None, 10.0]),
        ("avg_zero", [3.5, None, 10.0]),
    ],
)
def test_consolidation_functions_ignore_nan(how: str, expected: list[float | None]) -> None:
    s = _series([1, 2, 3, 4, 5, None, None, None, None, 10], consolidation=how)
    assert [v for v, _ in _points(s, 3)] == expected


def test_consolidation_gaps_and_x_files_factor() -> None:
    values: list[float | None] = [1, 2, None, None, None, None, 7, 8, 9, 10]
    assert [v for v, _ in _points(_series(values), 3)] == [2.0, 8.0, 10.0]
    assert [v for v, _ in _points(_series(values, consolidation="avg_zero"), 3)] == [
        0.5,
        6.0,
        10.0,
    ]
    # graphite-web compares present/valuesPerPoint, also for the short last bucket
    half = _series(values, x_files_factor=0.5)
    assert [v for v, _ in _points(half, 3)] == [None, 8.0, None]


def test_consolidation_uses_the_range_of_the_whole_response() -> None:
    short = Series("s", 600, 60, np.arange(5.0))  # 600..900
    long = Series("l", 600, 60, np.arange(10.0))  # 600..1200
    short_grid, long_grid = consolidate([short, long], 5)
    # 600 s / 60 = 10 points > 5: valuesPerPoint 2 for both
    assert long_grid.stamps.tolist() == [720, 840, 960, 1080, 1200]
    assert short_grid.stamps.tolist() == [720, 840]
    assert short_grid.values.tolist() == [1.5, 3.5]


def test_unknown_consolidation_function() -> None:
    with pytest.raises(RenderError, match="unknown consolidation function 'median'"):
        consolidate([_series([1, 2, 3, 4], consolidation="median")], 2)


def test_json_text_is_compact_and_exact() -> None:
    s = Series("a", 60, 60, np.array([1.5, np.nan, 12.25]))
    body = encode_json([s], consolidate([s], None))
    assert body == (
        b'[{"target":"a","tags":{"name":"a"},"datapoints":[[1.5,60],[null,120],[12.25,180]]}]'
    )


def test_json_special_values() -> None:
    s = Series("x;dc=eu", 0, 10, np.array([-0.0, math.inf, -math.inf, 1e-7, 1e20, -3.0]))
    (item,) = json.loads(encode_json([s], consolidate([s], None)))
    assert item["target"] == "x;dc=eu"
    assert item["tags"] == {"name": "x", "dc": "eu"}
    assert item["datapoints"] == [
        [-0.0, 0],
        [math.inf, 10],
        [-math.inf, 20],
        [1e-7, 30],
        [1e20, 40],
        [-3.0, 50],
    ]
    body = encode_json([s], consolidate([s], None))
    assert b"[[-0.0,0],[1e9999,10],[-1e9999,20]," in body


def test_json_of_nothing() -> None:
    assert encode_json([], []) == b"[]"
    empty = Series("e", 0, 60, np.array([]))
    assert json.loads(encode_json([empty], consolidate([empty], None))) == [
        {"target": "e", "tags": {"name": "e"}, "datapoints": []}
    ]


_FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-1e6, 1e6).map(lambda f: round(f, 3)),
    st.integers(-(2**53), 2**53).map(float),
)


@given(st.lists(_FLOATS, max_size=40))
def test_json_numbers_read_back_exactly(values: list[float]) -> None:
    s = Series("p", 0, 1, np.array(values, dtype=np.float64))
    body = encode_json([s], consolidate([s], None))
    (item,) = json.loads(body)
    for (got, ts), want, i in zip(item["datapoints"], values, range(len(values)), strict=True):
        assert ts == i
        if math.isnan(want):
            assert got is None
        else:
            assert got == want and math.copysign(1, got) == math.copysign(1, want)
    texts = body.split(b'"datapoints":[')[1][:-3].split(b"],[") if values else []
    for text, want in zip(texts, values, strict=True):
        value = text.lstrip(b"[").split(b",")[0].strip().decode()
        if math.isnan(want):
            assert value == "null"
        elif math.isinf(want):
            assert value == ("1e9999" if want > 0 else "-1e9999")
        else:
            assert float(value) == want


def test_csv_and_raw_match_graphite_web() -> None:
    s = Series("a,b", 0, 60, np.array([1.0, np.nan, 2.5]))
    assert encode_csv([s], UTC) == (
        b'"a,b",1970-01-01 00:00:00,1.0\r\n'
        b'"a,b",1970-01-01 00:01:00,\r\n'
        b'"a,b",1970-01-01 00:02:00,2.5\r\n'
    )
    paris = encode_csv([s], parse_timezone("Europe/Paris")).decode()
    assert paris.startswith('"a,b",1970-01-01 01:00:00,1.0')
    assert encode_raw([s]) == b"a,b,0,180,60|1.0,None,2.5\n"


@pytest.fixture
def source() -> MemorySource:
    src = MemorySource(step=60)
    start = NOW - 600
    src.add("web.a", start, [1, 2, None, 4, 5, 6, 7, 8, 9, 10])
    src.add("web.b", start, [None] * 10)
    return src


def test_render_json_end_to_end(source: MemorySource) -> None:
    req = _request(target="web.*", **{"until": "-1s", "from": "-10min"})
    content_type, body = render(req, source, Limits())
    assert content_type == "application/json"
    data = json.loads(body)
    assert [d["target"] for d in data] == ["web.a", "web.b"]
    assert data[0]["datapoints"][:3] == [[1.0, NOW - 600], [2.0, NOW - 540], [None, NOW - 480]]
    assert len(data[1]["datapoints"]) == 10


def test_render_no_null_points_drops_points_and_empty_series(source: MemorySource) -> None:
    req = _request(target="web.*", **{"from": "-10min"}, noNullPoints="1")
    data = json.loads(render(req, source, Limits())[1])
    assert [d["target"] for d in data] == ["web.a"]
    assert [v for v, _ in data[0]["datapoints"]] == [1, 2, 4, 5, 6, 7, 8, 9, 10]


def test_render_max_data_points(source: MemorySource) -> None:
    req = _request(target="web.a", **{"until": "-1s", "from": "-10min"}, maxDataPoints="5")
    ((item),) = json.loads(render(req, source, Limits())[1])
    # 10 points from S = NOW - 600 (a multiple of 120): valuesPerPoint 2, nudge 120,
    # one value dropped: buckets [2,None] [4,5] [6,7] [8,9] [10] stamped S+120 ...
    start = NOW - 600
    assert item["datapoints"] == [
        [2.0, start + 120],
        [4.5, start + 240],
        [6.5, start + 360],
        [8.5, start + 480],
        [10.0, start + 600],
    ]


def test_render_csv_and_raw(source: MemorySource) -> None:
    req = _request(target="web.a", **{"until": "-1s", "from": "-2min"}, format="raw")
    assert render(req, source, Limits()) == (
        "text/plain",
        f"web.a,{NOW - 120},{NOW},60|9.0,10.0\n".encode(),
    )
    content_type, body = render(dataclasses.replace(req, format="csv"), source, Limits())
    assert content_type == "text/csv"
    assert body.decode().splitlines() == [
        "web.a,2023-11-14 22:12:00,9.0",
        "web.a,2023-11-14 22:13:00,10.0",
    ]


def test_render_enforces_max_points(source: MemorySource) -> None:
    req = _request(target=["web.a", "web.b"], **{"until": "-1s", "from": "-10min"})
    assert render(req, source, Limits(max_points=20))[0] == "application/json"
    with pytest.raises(RenderError) as err:
        render(req, source, Limits(max_points=19))
    assert "20 datapoints, more than the limit of 19 (max_points)" in str(err.value)
    with pytest.raises(RenderError, match="limit of 19"):
        render(dataclasses.replace(req, format="raw"), source, Limits(max_points=19))
    small = dataclasses.replace(req, max_data_points=2)
    assert render(small, source, Limits(max_points=19))[0] == "application/json"


def test_render_enforces_max_series(source: MemorySource) -> None:
    with pytest.raises(RenderError, match="max_series"):
        render(_request(target="web.*"), source, Limits(max_series=1))
