"""Mapping expressions: what each function answers, and what is refused before running."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from scimflow.scim.expressions import ExpressionError, compile_expression

USER = {
    "first_name": "Barbara",
    "last_name": "Jensen",
    "email": "BJensen@Example.com",
    "title": "  Tour Guide  ",
    "department": None,
    "organization": "Emea/Sales/North",
    "status": "ACTIVE",
    "mobile_phone": pd.NA,
    "division": "",
}
NAMES = frozenset(USER) | {"login"}


def run(text: str, record: dict[str, Any] | None = None) -> Any:
    return compile_expression(text, allowed_names=NAMES)(USER if record is None else record)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # concat skips missing values (None, NA) and joins the rest as text
        ("concat(first_name, ' ', last_name)", "Barbara Jensen"),
        ("concat(first_name, department, mobile_phone, '!')", "Barbara!"),
        ("concat('n', 1, True)", "n1True"),
        ("concat(department, mobile_phone)", ""),
        ("lower(email)", "bjensen@example.com"),
        ("upper(first_name)", "BARBARA"),
        ("lower(department)", None),
        ("upper(mobile_phone)", None),
        ("trim(title)", "Tour Guide"),
        ("trim(department)", None),
        # default: the fallback for None, NA and "", the value otherwise
        ("default(department, 'Unassigned')", "Unassigned"),
        ("default(mobile_phone, 'none')", "none"),
        ("default(division, 'none')", "none"),
        ("default(first_name, 'none')", "Barbara"),
        ("default(department, default(division, last_name))", "Jensen"),
        ("when(status == 'ACTIVE', 'yes', 'no')", "yes"),
        ("when(status != 'ACTIVE', 'yes', 'no')", "no"),
        ("when(department, 'has', 'has not')", "has not"),
        ("when(mobile_phone, 'has', 'has not')", "has not"),
        ("split_part(organization, '/', 1)", "Emea"),
        ("split_part(organization, '/', 3)", "North"),
        ("split_part(organization, '/', -1)", "North"),
        ("split_part(organization, '/', -3)", "Emea"),
        ("split_part(organization, '/', 4)", ""),
        ("split_part(organization, '/', -4)", ""),
        ("split_part(email, '@', 1)", "BJensen"),
        ("split_part(department, '/', 1)", None),
        # comparisons, and/or answer an operand as Python does, not negates
        ("status == 'ACTIVE'", True),
        ("status == 'SUSPENDED'", False),
        ("department == None", True),
        ("mobile_phone == None", True),
        ("status == 'ACTIVE' == status", True),  # chained as in Python, not (a == b) == c
        ("status == 'ACTIVE' and first_name", "Barbara"),
        ("status == 'SUSPENDED' and first_name", False),
        ("department or last_name", "Jensen"),
        ("department or mobile_phone", None),
        ("not department", True),
        ("not first_name", False),
        ("not (status == 'ACTIVE' or department)", False),
        ("-1", -1),
        ("None", None),
        ("'text'", "text"),
        ("  lower(first_name)  ", "barbara"),
    ],
)
def test_functions_and_operators(text: str, expected: Any) -> None:
    assert run(text) == expected
    assert type(run(text)) is type(expected)


def test_when_evaluates_only_the_branch_it_takes() -> None:
    # the branch not taken would fail (an index out of a non-integer): never evaluated
    expr = "when(status == 'ACTIVE', 'ok', split_part(first_name, '/', first_name))"
    assert run(expr) == "ok"
    with pytest.raises(ExpressionError, match="index must be a non-zero integer"):
        run(expr, {**USER, "status": "SUSPENDED"})


def test_a_missing_column_reads_as_none() -> None:
    assert compile_expression("default(login, 'x')")({}) == "x"


def test_the_names_an_expression_reads_are_known() -> None:
    expr = compile_expression("concat(lower(first_name), when(status == 'A', title, 'x'))")
    assert expr.names == {"first_name", "status", "title"}


def test_runtime_failure_names_the_expression() -> None:
    text = "split_part(first_name, department, 1)"
    with pytest.raises(ExpressionError) as caught:
        run(text, {**USER, "department": ""})
    assert caught.value.expression == text
    assert "separator must not be empty" in str(caught.value)
    assert text in str(caught.value)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("__import__('os')", "dunder names are not allowed: __import__"),
        ("__builtins__", "dunder names are not allowed: __builtins__"),
        ("first_name.__class__", "attribute access is not allowed"),
        ("email.lower()", "only calls to the mapping functions by name are allowed"),
        ("first_name.upper", "attribute access is not allowed"),
        ("first_name[0]", "subscripts are not allowed"),
        ("lambda: 1", "lambda is not allowed"),
        ("open('/etc/passwd')", "unknown function 'open'"),
        ("eval('1')", "unknown function 'eval'"),
        ("getattr(first_name, 'upper')", "unknown function 'getattr'"),
        ("password", "unknown name 'password'"),
        ("lower(secret)", "unknown name 'secret'"),
        ("first_name + last_name", "arithmetic is not allowed"),
        ("-first_name", "arithmetic is not allowed"),
        ("'a' if first_name else 'b'", "use when(c, x, y)"),
        ("[first_name]", "lists are not allowed"),
        ("{'a': 1}", "dicts are not allowed"),
        ("(x for x in first_name)", "comprehensions are not allowed"),
        ("f'{first_name}'", "f-strings are not allowed"),
        ("(y := 1)", "assignment expressions are not allowed"),
        ("status < 'B'", "only == and != comparisons are allowed, not <"),
        ("status in ('A', 'B')", "only == and != comparisons are allowed, not in"),
        ("status is None", "only == and != comparisons are allowed, not is"),
        ("lower(first_name, last_name)", "lower() takes 1 argument(s), got 2"),
        ("default(first_name)", "default() takes 2 argument(s), got 1"),
        ("concat()", "concat() takes at least 1 argument(s), got 0"),
        ("lower(x=first_name)", "positional arguments only"),
        ("concat(*first_name)", "*arguments are not allowed"),
        ("lower", "lower is a function"),
        ("split_part(email, '', 1)", "separator must be a non-empty string"),
        ("split_part(email, '@', 0)", "index must be a non-zero integer"),
        ("split_part(email, '@', 1.5)", "index must be a non-zero integer"),
        ("b'bytes'", "constants of type bytes are not allowed"),
        ("lower(first_name", "not a valid expression"),
        ("import os", "not a valid expression"),
        ("", "the expression is empty"),
        ("x" * 1001, "longer than 1000 characters"),
    ],
)
def test_refused_at_compile_time(text: str, reason: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_expression(text, allowed_names=NAMES)
    assert reason in caught.value.reason
    assert isinstance(caught.value, ValueError)
    if len(text) <= 1000:
        assert repr(text) in str(caught.value)  # the message names the expression


def test_without_allowed_names_any_plain_name_is_a_column() -> None:
    assert compile_expression("lower(custom_attribute)")({"custom_attribute": "X"}) == "x"
    with pytest.raises(ExpressionError, match="dunder"):
        compile_expression("__class__")
