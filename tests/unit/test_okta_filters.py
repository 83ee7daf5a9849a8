from __future__ import annotations

from collections.abc import Callable

import pytest
from scimflow.okta.emulator.filters import FilterError, compile_filter

USER = {
    "id": "00u1",
    "status": "ACTIVE",
    "lastUpdated": "2026-11-29T07:00:00.000Z",
    "profile": {
        "login": "Ada.Lovelace@example.com",
        "department": "Engineering",
        "emails": ["a@x", "b@y"],
    },
}


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ('status eq "ACTIVE"', True),
        ('status eq "active"', True),  # string values compare case-insensitively
        ('status eq "SUSPENDED"', False),
        ('lastUpdated gt "2026-11-29T06:59:59.999Z"', True),
        ('lastUpdated gt "2026-11-29T07:00:00.000Z"', False),
        ('lastUpdated ge "2026-11-29T07:00:00.000Z"', True),
        ('profile.login sw "ada."', True),
        ('profile.department co "gine"', True),
        ("profile.department pr", True),
        ("profile.manager pr", False),
        ('status eq "SUSPENDED" or profile.department eq "Engineering"', True),
        ('status eq "ACTIVE" and profile.department eq "Sales"', False),
        ('(status eq "STAGED" or status eq "ACTIVE") and id eq "00u1"', True),
        ('profile.emails eq "b@y"', True),  # arrays match on any element
    ],
)
def test_expressions(expr: str, expected: bool) -> None:
    assert compile_filter(expr)(USER) is expected


@pytest.mark.parametrize(
    ("expr", "reason"),
    [
        ('status xx "ACTIVE"', "unknown operator"),
        ("status eq", "ends too early"),
        ('(status eq "ACTIVE"', "ends too early"),
        ("status eq ACTIVE", "must be quoted"),
        ('status eq "ACTIVE" "x"', "unexpected"),
        ('status eq "ACTIVE" ; drop', "cannot parse"),
    ],
)
def test_bad_expressions_say_why(expr: str, reason: str) -> None:
    with pytest.raises(FilterError, match=reason):
        compile_filter(expr)


# -- RFC 7644 §3.4.2.2: "and" binds tighter than "or" -------------------------------------
FLAGS = [{"a": a, "b": b, "c": c} for a in (0, 1) for b in (0, 1) for c in (0, 1)]


@pytest.mark.parametrize(
    ("expr", "grouped", "truth"),
    [
        (
            "a eq 1 or b eq 1 and c eq 1",
            "a eq 1 or (b eq 1 and c eq 1)",
            lambda o: o["a"] or (o["b"] and o["c"]),
        ),
        (
            "a eq 1 and b eq 1 or c eq 1",
            "(a eq 1 and b eq 1) or c eq 1",
            lambda o: (o["a"] and o["b"]) or o["c"],
        ),
        (
            "a eq 1 or b eq 1 and c eq 1 or a eq 0 and c eq 0",
            "a eq 1 or (b eq 1 and c eq 1) or (a eq 0 and c eq 0)",
            lambda o: o["a"] or (o["b"] and o["c"]) or (not o["a"] and not o["c"]),
        ),
        (
            "(a eq 1 or b eq 1) and c eq 1",
            "(a eq 1 or b eq 1) and c eq 1",
            lambda o: (o["a"] or o["b"]) and o["c"],
        ),
        (
            "a eq 1 AND b eq 1 OR c eq 1",  # the logical operators are case-insensitive too
            "(a eq 1 and b eq 1) or c eq 1",
            lambda o: (o["a"] and o["b"]) or o["c"],
        ),
    ],
)
def test_and_binds_tighter_than_or(
    expr: str, grouped: str, truth: Callable[[dict[str, int]], int]
) -> None:
    plain, explicit = compile_filter(expr), compile_filter(grouped)
    for obj in FLAGS:
        expected = bool(truth(obj))
        assert plain(obj) is expected, (expr, obj)
        assert explicit(obj) is expected, (grouped, obj)
