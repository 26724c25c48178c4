r"""Graphite target expressions parsed into a small immutable AST.

Follows graphite-web's pyparsing grammar (``webapp/graphite/render/grammar.py``,
https://graphite.readthedocs.io/en/latest/render_api.html#target) with a
hand-written recursive-descent parser, so that a syntax error can say where it
happened and what was expected::

    >>> parse('sumSeries(a.b.{c,d}, 3, key=true)')
    Call(name='sumSeries', args=(Path(path='a.b.{c,d}'), Number(value=3)),
         kwargs=(('key', Boolean(value=True)),))

What graphite-web accepts, and so do we:

- a path is every printable character except ``(){},.'"\\|`` and whitespace,
  in dot-separated parts; ``{a,b}`` groups keep their commas; a backslash
  escapes one of those symbols but the dot (or ``=``) into the path; ``name;tag=value``,
  ``@``, ``:``, ``-``, ``=`` ... are plain path characters;
- a call is ``name(args)`` with positional arguments first, then keyword
  arguments ``name=value``;
- ``a.b | f(x)`` pipes ``a.b`` in as the first argument: ``f(a.b, x)``;
- literals: ints, floats, scientific notation, ``inf``, ``true``/``false`` and
  ``None`` (case-insensitive), strings in single or double quotes.

Two deliberate differences: trailing text after a complete expression is an
error (graphite-web ignores it silently), and strings honour ``\\\\`` and an
escaped quote (graphite-web keeps the backslashes); any other backslash is kept,
so ``"(\\d+)"`` still reaches ``aliasSub`` as a regex. An argument that reads as
a number, boolean or ``None`` is that literal (as in graphite-web), so a metric
named ``true`` can only be a whole target, never an argument.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from typing import NoReturn

from vigil.query.errors import RenderError

MAX_DEPTH = 64
"""How deeply calls may nest; deeper targets are refused rather than overflowing the stack."""

PATH_SYMBOLS = frozenset("(){},.'\"\\|")
"""Characters that end a path part unless escaped (graphite-web's ``symbols``)."""

_ESCAPABLE = (PATH_SYMBOLS - {"."}) | {"="}  # an escaped dot would still split the path
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?\Z")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_KEYWORD_ARG = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*=")
_WORDS: dict[str, bool | float | None] = {
    "true": True,
    "false": False,
    "none": None,
    "inf": math.inf,
    "-inf": -math.inf,
}


@dataclasses.dataclass(frozen=True)
class Path:
    """A metric path or glob pattern, fetched from storage as a series list."""

    path: str


@dataclasses.dataclass(frozen=True)
class Call:
    """A render function call; keyword arguments keep the order they were written in."""

    name: str
    args: tuple[Expr | Literal, ...] = ()
    kwargs: tuple[tuple[str, Expr | Literal], ...] = ()


@dataclasses.dataclass(frozen=True)
class String:
    """A quoted string argument (alias names, regexes, intervals such as ``"1h"``)."""

    value: str


@dataclasses.dataclass(frozen=True)
class Number:
    """A numeric argument; ints stay ints so that node indexes and names stay exact."""

    value: int | float


@dataclasses.dataclass(frozen=True)
class Boolean:
    """A ``true``/``false`` argument."""

    value: bool


@dataclasses.dataclass(frozen=True)
class NoneLiteral:
    """The ``None`` argument, which graphite-web passes to mean "use the default"."""


Expr = Path | Call
Literal = String | Number | Boolean | NoneLiteral


@functools.lru_cache(maxsize=65536)
def parse(target: str) -> Expr:
    """Parse one ``target`` parameter into its AST, or raise ``RenderError`` saying where it broke.

    A lone literal such as ``5`` or ``true`` is a path here, as in graphite-web,
    where only function arguments can be literals. ASTs are immutable, so
    parses are cached: dashboards and alert rules evaluate the same targets
    over and over.
    """
    parser = _Parser(target)
    parser.skip_space()
    expr = parser.expression(0, top=True)
    parser.skip_space()
    if parser.pos < len(target):
        parser.fail("end of target (is a ')' or ',' out of place?)")
    assert isinstance(expr, Path | Call)
    return expr


def render(node: Expr | Literal) -> str:
    r"""Text that parses back to ``node``; used to name series and to re-evaluate sub-expressions.

    >>> render(Call("alias", (Path("a.b"), String('say "hi"'))))
    'alias(a.b,"say \\\\"hi\\\\"")'
    """
    if isinstance(node, Path):
        return _render_path(node.path)
    if isinstance(node, Call):
        parts = [_render_positional(a) for a in node.args]
        parts += [f"{k}={render(v)}" for k, v in node.kwargs]
        return f"{node.name}({','.join(parts)})"
    if isinstance(node, String):
        escaped = node.value.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    if isinstance(node, Boolean):
        return "true" if node.value else "false"
    if isinstance(node, Number):
        if isinstance(node.value, int):
            return str(node.value)
        return repr(node.value)
    return "None"


def _render_positional(node: Expr | Literal) -> str:
    text = render(node)
    keyword = _KEYWORD_ARG.match(text) if isinstance(node, Path) else None
    if keyword:
        text = text[: keyword.end() - 1] + "\\=" + text[keyword.end() :]
    return text


def _render_path(path: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(path):
        c = path[i]
        if c == "{":
            close = path.find("}", i + 1)
            group = path[i + 1 : close] if close > 0 else None
            if group is not None and "{" not in group and "." not in group:
                inner = "".join("\\" + g if g in _ESCAPABLE - {",", ".", "="} else g for g in group)
                out.append("{" + inner + "}")
                i = close + 1
                continue
        if c in PATH_SYMBOLS and c != ".":
            out.append("\\" + c)
        else:
            out.append(c)
        i += 1
    return "".join(out)


class _Parser:
    """Recursive descent over the target text with a cursor."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, expected: str) -> NoReturn:
        got = f"{self.text[self.pos]!r}" if self.pos < len(self.text) else "the end of the target"
        raise RenderError(
            f"bad target {self.text!r}: expected {expected} at position {self.pos}, got {got}"
        )

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def expect(self, char: str) -> None:
        self.skip_space()
        if self.peek() != char:
            self.fail(repr(char))
        self.pos += 1

    def expression(self, depth: int, top: bool = False) -> Expr | Literal:
        """An argument or a whole target: call, path or literal, then any pipes."""
        if depth > MAX_DEPTH:
            raise RenderError(
                f"bad target {self.text!r}: calls nest deeper than {MAX_DEPTH} levels"
            )
        c = self.peek()
        if c in ("'", '"'):
            if top:
                self.fail("a function call or a path (a target cannot be a string)")
            node: Expr | Literal = self.string()
        else:
            node = self.call_or_path(depth, top)
        while True:
            mark = self.pos
            self.skip_space()
            if self.peek() != "|":
                self.pos = mark
                return node
            if not isinstance(node, Path | Call):
                self.fail("a series expression before '|'")
            self.pos += 1
            self.skip_space()
            start = self.pos
            piped = self.call_or_path(depth, top=True)
            if not isinstance(piped, Call):
                self.pos = start
                self.fail("a function call after '|'")
            node = Call(piped.name, (node, *piped.args), piped.kwargs)

    def call_or_path(self, depth: int, top: bool) -> Expr | Literal:
        start = self.pos
        word = _IDENTIFIER.match(self.text, self.pos)
        if word:
            after = word.end()
            while after < len(self.text) and self.text[after].isspace():
                after += 1
            if after < len(self.text) and self.text[after] == "(":
                self.pos = after + 1
                return self.call(word.group(), depth)
        raw, path = self.path()
        if not top and "\\" not in raw:
            literal = _literal(raw)
            if literal is not None:
                return literal
        if not path:
            self.pos = start
            self.fail("a function call, a path or a literal")
        return Path(path)

    def call(self, name: str, depth: int) -> Call:
        args: list[Expr | Literal] = []
        kwargs: list[tuple[str, Expr | Literal]] = []
        self.skip_space()
        if self.peek() == ")":
            self.pos += 1
            return Call(name)
        while True:
            self.skip_space()
            keyword = _KEYWORD_ARG.match(self.text, self.pos)
            if keyword:
                key = keyword.group(1)
                if any(k == key for k, _ in kwargs):
                    self.fail(f"a new argument name ({key!r} is given twice)")
                self.pos = keyword.end()
                self.skip_space()
                kwargs.append((key, self.expression(depth + 1)))
            else:
                if kwargs:
                    self.fail("a keyword argument (name=value) after a keyword argument")
                args.append(self.expression(depth + 1))
            self.skip_space()
            c = self.peek()
            if c == ",":
                self.pos += 1
            elif c == ")":
                self.pos += 1
                return Call(name, tuple(args), tuple(kwargs))
            else:
                self.fail(f"',' or ')' in the arguments of {name}()")

    def path(self) -> tuple[str, str]:
        """Scan a path expression; returns (raw text, path with escapes resolved)."""
        start = self.pos
        out: list[str] = []
        text = self.text
        while True:
            part_start = self.pos
            while self.pos < len(text):
                c = text[self.pos]
                if c == "\\":
                    out.append(self.escape())
                elif c == "{":
                    out.append(self.brace_group())
                elif c in PATH_SYMBOLS or c.isspace() or not c.isprintable():
                    break
                else:
                    out.append(c)
                    self.pos += 1
            if self.pos == part_start:
                if out:
                    self.fail("a path part after '.'")
                return "", ""
            if self.peek() != ".":
                return text[start : self.pos], "".join(out)
            out.append(".")
            self.pos += 1

    def escape(self) -> str:
        c = self.text[self.pos + 1 : self.pos + 2]
        if not c or c not in _ESCAPABLE:
            self.pos += 1
            self.fail("one of (){},'\"\\|= after '\\'")
        self.pos += 2
        return c

    def brace_group(self) -> str:
        open_at = self.pos
        self.pos += 1
        out = ["{"]
        text = self.text
        while self.pos < len(text):
            c = text[self.pos]
            if c == "}":
                self.pos += 1
                out.append("}")
                return "".join(out)
            if c == "\\":
                out.append(self.escape())
            elif c == "," or not (c in PATH_SYMBOLS or c.isspace() or not c.isprintable()):
                out.append(c)
                self.pos += 1
            else:
                break
        self.fail(f"'}}' to close the '{{' at position {open_at}")

    def string(self) -> String:
        quote = self.text[self.pos]
        open_at = self.pos
        self.pos += 1
        out: list[str] = []
        text = self.text
        while self.pos < len(text):
            c = text[self.pos]
            if c == quote:
                self.pos += 1
                return String("".join(out))
            if c == "\\" and self.pos + 1 < len(text) and text[self.pos + 1] in (quote, "\\"):
                out.append(text[self.pos + 1])
                self.pos += 2
                continue
            out.append(c)
            self.pos += 1
        self.fail(f"{quote} to close the string opened at position {open_at}")


def _literal(raw: str) -> Literal | None:
    if _NUMBER.match(raw):
        if any(c in raw for c in ".eE"):
            return Number(float(raw))
        return Number(int(raw))
    word = raw.lower()
    if word in _WORDS:
        value = _WORDS[word]
        if value is None:
            return NoneLiteral()
        if isinstance(value, bool):
            return Boolean(value)
        return Number(value)
    return None
