"""Parser of Graphite target expressions: table of cases, errors, and round-trip properties."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigil.query.errors import RenderError
from vigil.query.grammar import (
    MAX_DEPTH,
    Boolean,
    Call,
    Expr,
    Literal,
    NoneLiteral,
    Number,
    Path,
    String,
    parse,
    render,
)

P = Path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a.b.c", P("a.b.c")),
        ("servers.web*.cpu", P("servers.web*.cpu")),
        ("a.?.[0-9]x", P("a.?.[0-9]x")),
        ("a.{b,c}.d", P("a.{b,c}.d")),
        ("a.x{b,c}y{1,2}", P("a.x{b,c}y{1,2}")),
        ("cpu.load;host=a;dc=x", P("cpu.load;host=a;dc=x")),
        ("my-app:8080.req@2xx.p99#%~", P("my-app:8080.req@2xx.p99#%~")),
        (r"a\(b\).c\,d", P("a(b).c,d")),
        ("5", P("5")),
        ("true", P("true")),
        ("f()", Call("f")),
        ("f(a.b)", Call("f", (P("a.b"),))),
        ("  f ( a.b ,  c )  ", Call("f", (P("a.b"), P("c")))),
        (
            "f(a, 3, -4, 1.5, -0.25, 1e3, 2.5E-2, inf, -inf)",
            Call(
                "f",
                (
                    P("a"),
                    Number(3),
                    Number(-4),
                    Number(1.5),
                    Number(-0.25),
                    Number(1000.0),
                    Number(0.025),
                    Number(math.inf),
                    Number(-math.inf),
                ),
            ),
        ),
        (
            "f(true, FALSE, True, none, None)",
            Call(
                "f",
                (
                    Boolean(True),
                    Boolean(False),
                    Boolean(True),
                    NoneLiteral(),
                    NoneLiteral(),
                ),
            ),
        ),
        ("f('single', \"double\")", Call("f", (String("single"), String("double")))),
        (
            r'f("say \"hi\"", ' + r"'it\'s', " + r'"back\\slash")',
            Call(
                "f",
                (
                    String('say "hi"'),
                    String("it's"),
                    String("back\\slash"),
                ),
            ),
        ),
        (
            r'aliasSub(a.b, "(\d+)", "\1")',
            Call(
                "aliasSub",
                (
                    P("a.b"),
                    String(r"(\d+)"),
                    String(r"\1"),
                ),
            ),
        ),
        ("f(a.b, 3, key=true)", Call("f", (P("a.b"), Number(3)), (("key", Boolean(True)),))),
        ("f(x=1, y='s')", Call("f", (), (("x", Number(1)), ("y", String("s"))))),
        ("f(g(h(a.*), 2), b)", Call("f", (Call("g", (Call("h", (P("a.*"),)), Number(2))), P("b")))),
        ("f(1h)", Call("f", (P("1h"),))),
        ("f(1.2.3)", Call("f", (P("1.2.3"),))),
        ("f(truex)", Call("f", (P("truex"),))),
        ("f(cpu;host=a)", Call("f", (P("cpu;host=a"),))),
        ("a.b | f(1) | g()", Call("g", (Call("f", (P("a.b"), Number(1))),))),
        ("f(a|g(), b)", Call("f", (Call("g", (P("a"),)), P("b")))),
    ],
)
def test_parse(text: str, expected: Expr) -> None:
    assert repr(parse(text)) == repr(expected)


@pytest.mark.parametrize(
    ("text", "position", "expected"),
    [
        ("", 0, "a function call, a path or a literal"),
        ("f(", 2, "a function call, a path or a literal"),
        ("f(a,", 4, "a function call, a path or a literal"),
        ("f(a b)", 4, "',' or ')' in the arguments of f()"),
        ("f(a))", 4, "end of target"),
        ("a..b", 2, "a path part after '.'"),
        ("a.{b,c", 6, "'}' to close the '{' at position 2"),
        ("f('abc", 6, "' to close the string opened at position 2"),
        ("f(x=1, y)", 7, "a keyword argument (name=value) after a keyword argument"),
        ("f(x=1, x=2)", 7, "a new argument name ('x' is given twice)"),
        ("'a.b'", 0, "a function call or a path"),
        ("a | b", 4, "a function call after '|'"),
        ("f(1 | g())", 4, "a series expression before '|'"),
        (r"a\b", 2, "one of"),
        (r"a\.b", 2, "one of"),
    ],
)
def test_syntax_error_says_where_and_what(text: str, position: int, expected: str) -> None:
    with pytest.raises(RenderError) as err:
        parse(text)
    message = str(err.value)
    assert f"at position {position}" in message
    assert f"expected {expected}" in message
    assert repr(text) in message


def test_nesting_is_bounded() -> None:
    deep = "f(" * (MAX_DEPTH + 2) + "a" + ")" * (MAX_DEPTH + 2)
    with pytest.raises(RenderError, match="nest deeper"):
        parse(deep)
    ok = "f(" * MAX_DEPTH + "a" + ")" * MAX_DEPTH
    assert isinstance(parse(ok), Call)


@pytest.mark.parametrize(
    ("node", "text"),
    [
        (Call("alias", (P("a.b"), String('say "hi"'))), r'alias(a.b,"say \"hi\"")'),
        (Call("f", (P("a=b"),)), r"f(a\=b)"),
        (Call("f", (P("x(1),y"), Number(2.0), Number(3))), r"f(x\(1\)\,y,2.0,3)"),
        (P("a.{b,c}.d"), "a.{b,c}.d"),
        (P("a{b.c}"), r"a\{b.c\}"),
        (
            Call("f", (NoneLiteral(), Boolean(False)), (("k", Number(-1e-05)),)),
            "f(None,false,k=-1e-05)",
        ),
    ],
)
def test_render(node: Expr, text: str) -> None:
    assert render(node) == text
    assert repr(parse(text)) == repr(node)


_PLAIN = "abcxyzABC019_-:;=*?[]#%~^$!+<>@&/"
_ESCAPED = "()'\"\\|,"
_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][-+]?\d+)?")


def _reads_as_literal(path: str) -> bool:
    return bool(_NUMBER.fullmatch(path)) or path.lower() in {"true", "false", "none", "inf", "-inf"}


_group = st.lists(st.text(_PLAIN, min_size=1, max_size=4), min_size=1, max_size=3).map(
    lambda alts: "{" + ",".join(alts) + "}"
)
_part = st.lists(
    st.one_of(st.text(_PLAIN, min_size=1, max_size=5), st.sampled_from(_ESCAPED), _group),
    min_size=1,
    max_size=4,
).map("".join)
_paths = (
    st.lists(_part, min_size=1, max_size=4)
    .map(".".join)
    .filter(lambda p: not _reads_as_literal(p))
    .map(Path)
)
_identifiers = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
_literals: st.SearchStrategy[Literal] = st.one_of(
    st.text(max_size=8).map(String),
    st.integers(-(10**20), 10**20).map(Number),
    st.floats(allow_nan=False).map(Number),
    st.booleans().map(Boolean),
    st.just(NoneLiteral()),
)


def _calls(children: st.SearchStrategy[Expr | Literal]) -> st.SearchStrategy[Expr]:
    kwargs = st.dictionaries(_identifiers, children, max_size=2).map(lambda d: tuple(d.items()))
    return st.builds(Call, _identifiers, st.lists(children, max_size=3).map(tuple), kwargs)


_args: st.SearchStrategy[Expr | Literal] = st.recursive(
    st.one_of(_paths, _literals), _calls, max_leaves=12
)
_targets: st.SearchStrategy[Expr] = st.one_of(_paths, _calls(_args))


@given(_targets)
def test_render_then_parse_gives_the_same_ast(node: Expr) -> None:
    assert repr(parse(render(node))) == repr(node)


@given(st.one_of(st.text(), st.text("af(),.{}[]*'\"\\|= 019-e;:@xTrUEnO\t")))
def test_any_text_parses_or_raises_render_error(text: str) -> None:
    try:
        node = parse(text)
    except RenderError:
        return
    assert repr(parse(render(node))) == repr(node)
