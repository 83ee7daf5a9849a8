"""Okta's ``filter`` and ``search`` expressions, enough of them for users, groups and logs.

Grammar, with RFC 7644 §3.4.2.2's precedence (``and`` binds tighter than ``or``, both
left-associative, parentheses first)::

    expr := conj ("or" conj)*
    conj := term ("and" term)*
    term := "(" expr ")" | attr op value

``op`` one of eq, ne, gt, ge, lt, le, sw, co, pr (``pr`` takes no value). Values are
double-quoted strings, ``true``/``false`` or numbers. Attributes are dotted paths into
the object (``status``, ``lastUpdated``, ``profile.login``). As in Okta, operators and
string values compare case-insensitively; timestamps in Okta's ISO form compare as
strings, which orders them correctly.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

__all__ = ["FilterError", "compile_filter"]

Predicate = Callable[[dict[str, Any]], bool]

_TOKEN = re.compile(
    r'\s*(?:(?P<lp>\()|(?P<rp>\))|(?P<str>"(?:[^"\\]|\\.)*")|(?P<word>[A-Za-z0-9_.:\-+]+))'
)
_OPS = {"eq", "ne", "gt", "ge", "lt", "le", "sw", "co", "pr"}


class FilterError(ValueError):
    """An expression Okta would refuse (HTTP 400, E0000031)."""


def _tokens(text: str) -> list[tuple[str, str]]:
    pos, out = 0, []
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise FilterError(f"cannot parse the expression near {text[pos : pos + 20]!r}")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def _lookup(obj: dict[str, Any], path: str) -> Any:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def _norm(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _compare(op: str, actual: Any, expected: Any) -> bool:
    if op == "pr":
        return actual is not None
    if actual is None:
        return op == "ne"
    if isinstance(actual, list):  # arrays match if any element matches
        return any(_compare(op, a, expected) for a in actual)
    a, e = _norm(actual), _norm(expected)
    try:
        if op == "eq":
            return bool(a == e)
        if op == "ne":
            return bool(a != e)
        if op == "gt":
            return bool(a > e)
        if op == "ge":
            return bool(a >= e)
        if op == "lt":
            return bool(a < e)
        if op == "le":
            return bool(a <= e)
        if op == "sw":
            return isinstance(a, str) and a.startswith(str(e))
        if op == "co":
            return isinstance(a, str) and str(e) in a
    except TypeError:
        return False
    raise FilterError(f"unknown operator {op!r}")


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise FilterError("the expression ends too early")
        self.i += 1
        return tok

    def _keyword(self, word: str) -> bool:
        """Take the next token if it is the logical operator ``word`` (any case)."""
        tok = self.peek()
        if tok is not None and tok[0] == "word" and tok[1].lower() == word:
            self.i += 1
            return True
        return False

    def expr(self) -> Predicate:
        terms = [self.conj()]
        while self._keyword("or"):
            terms.append(self.conj())
        if len(terms) == 1:
            return terms[0]
        return lambda o: any(t(o) for t in terms)

    def conj(self) -> Predicate:
        terms = [self.term()]
        while self._keyword("and"):
            terms.append(self.term())
        if len(terms) == 1:
            return terms[0]
        return lambda o: all(t(o) for t in terms)

    def term(self) -> Predicate:
        kind, text = self.take()
        if kind == "lp":
            inner = self.expr()
            if self.take()[0] != "rp":
                raise FilterError("a parenthesis is not closed")
            return inner
        if kind != "word":
            raise FilterError(f"expected an attribute, found {text!r}")
        attr = text
        op_kind, op = self.take()
        op = op.lower()
        if op_kind != "word" or op not in _OPS:
            raise FilterError(f"unknown operator {op!r} after {attr}")
        if op == "pr":
            return lambda o: _compare("pr", _lookup(o, attr), None)
        vkind, raw = self.take()
        value: Any
        if vkind == "str":
            value = raw[1:-1].replace('\\"', '"')
        elif raw in ("true", "false"):
            value = raw == "true"
        else:
            try:
                value = float(raw) if "." in raw else int(raw)
            except ValueError as exc:
                raise FilterError(f"value {raw!r} must be quoted") from exc
        return lambda o: _compare(op, _lookup(o, attr), value)


def compile_filter(text: str) -> Predicate:
    """Compile an expression into a predicate over Okta JSON objects."""
    parser = _Parser(_tokens(text))
    pred = parser.expr()
    if parser.peek() is not None:
        raise FilterError(f"unexpected {parser.peek()[1]!r} after the expression")  # type: ignore[index]
    return pred
