"""Mapping expressions: the small language of a target's ``mapping`` overrides.

An expression computes one SCIM attribute from one Okta user, for example
``lower(email)``, ``default(department, 'Unassigned')`` or
``when(status == 'SUSPENDED', 'inactive', concat(first_name, ' ', last_name))``.
It is parsed with :mod:`ast` and checked against a whitelist before anything runs;
nothing is ever handed to ``eval``. What is allowed:

- names: the user's columns (``login``, ``email``, ``first_name``, ...); pandas NA and
  missing columns read as ``None``;
- constants: strings, numbers, ``True``, ``False``, ``None`` (and ``-`` before a number);
- comparisons ``==`` and ``!=``; ``and``, ``or`` (Python's: they answer an operand),
  ``not``;
- calls to these functions only, with positional arguments:

  ============================  ===========================================================
  ``concat(x, ...)``            the arguments as text, joined; missing ones are skipped
  ``lower(x)``, ``upper(x)``    the text in lower or upper case (``None`` stays ``None``)
  ``trim(x)``                   the text without surrounding white space
  ``default(x, fallback)``      ``fallback`` when ``x`` is missing or ``""``, else ``x``
  ``when(cond, then, other)``   ``then`` when ``cond`` is true, else ``other`` (lazily)
  ``split_part(x, sep, n)``     the ``n``-th part of ``x`` split on ``sep``, counting from 1
                                (negative ``n`` counts from the end); ``""`` past the end
  ============================  ===========================================================

Anything else (attribute access, subscripts, lambdas, other calls, keyword arguments,
dunder names, arithmetic) is refused by :func:`compile_expression` with an
:class:`ExpressionError` naming the expression and the reason.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Collection, Mapping
from typing import Any

__all__ = ["FUNCTIONS", "CompiledExpression", "ExpressionError", "compile_expression"]

MAX_LENGTH = 1000

# name -> (min args, max args or None for any)
FUNCTIONS: dict[str, tuple[int, int | None]] = {
    "concat": (1, None),
    "lower": (1, 1),
    "upper": (1, 1),
    "trim": (1, 1),
    "default": (2, 2),
    "when": (3, 3),
    "split_part": (3, 3),
}

_Eval = Callable[[Mapping[str, Any]], Any]


class ExpressionError(ValueError):
    """An expression is refused (at compile time) or failed on a record (at run time)."""

    def __init__(self, expression: str, reason: str) -> None:
        super().__init__(f"expression {expression!r}: {reason}")
        self.expression = expression
        self.reason = reason


def _missing(value: Any) -> bool:
    """None, pandas NA/NaT, or a float NaN (without importing pandas here)."""
    if value is None:
        return True
    if isinstance(value, float):
        return value != value
    return type(value).__name__ in ("NAType", "NaTType")


def _text(value: Any) -> str | None:
    return None if _missing(value) else str(value)


def _truthy(value: Any) -> bool:
    return False if _missing(value) else bool(value)


def _split_part(expression: str, value: Any, sep: Any, index: Any) -> Any:
    if _missing(value):
        return None
    sep_text = _text(sep)
    if not sep_text:
        raise ExpressionError(expression, "split_part: the separator must not be empty")
    if isinstance(index, bool) or not isinstance(index, int) or index == 0:
        raise ExpressionError(expression, "split_part: the index must be a non-zero integer")
    parts = str(value).split(sep_text)
    position = index - 1 if index > 0 else len(parts) + index
    return parts[position] if 0 <= position < len(parts) else ""


class CompiledExpression:
    """A checked expression: call it with a record (a mapping of column to value)."""

    __slots__ = ("_run", "names", "text")

    def __init__(self, text: str, run: _Eval, names: frozenset[str]) -> None:
        self.text = text
        self.names = names  # the columns it reads
        self._run = run

    def __call__(self, record: Mapping[str, Any]) -> Any:
        try:
            return self._run(record)
        except ExpressionError:
            raise
        except Exception as exc:  # a bug in a built-in on odd data: name the expression
            raise ExpressionError(self.text, f"{type(exc).__name__}: {exc}") from exc

    def __repr__(self) -> str:
        return f"CompiledExpression({self.text!r})"


def compile_expression(
    text: str, *, allowed_names: Collection[str] | None = None
) -> CompiledExpression:
    """Parse and check ``text``; with ``allowed_names``, any other name is refused too."""
    if not isinstance(text, str):
        raise ExpressionError(str(text), "an expression must be a string")
    if not text.strip():
        raise ExpressionError(text, "the expression is empty")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(text[:40] + "...", f"longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(text, f"not a valid expression: {exc.msg}") from exc
    except (RecursionError, MemoryError, ValueError) as exc:
        raise ExpressionError(text, "not a valid expression: too deeply nested") from exc
    names: set[str] = set()
    builder = _Builder(text, None if allowed_names is None else frozenset(allowed_names), names)
    try:
        run = builder.build(tree.body)
    except RecursionError as exc:
        raise ExpressionError(text, "too deeply nested") from exc
    return CompiledExpression(text, run, frozenset(names))


class _Builder:
    """Turns a checked AST into nested closures (no ``eval``, nothing but the whitelist)."""

    def __init__(self, text: str, allowed: frozenset[str] | None, names: set[str]) -> None:
        self.text = text
        self.allowed = allowed
        self.names = names

    def refuse(self, reason: str) -> ExpressionError:
        return ExpressionError(self.text, reason)

    def build(self, node: ast.expr) -> _Eval:
        if isinstance(node, ast.Constant):
            return self.constant(node)
        if isinstance(node, ast.UnaryOp):
            return self.unary(node)
        if isinstance(node, ast.Name):
            return self.name(node)
        if isinstance(node, ast.Call):
            return self.call(node)
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.BoolOp):
            return self.boolop(node)
        raise self.refuse(_REFUSED.get(type(node), f"{type(node).__name__} is not allowed"))

    def constant(self, node: ast.Constant) -> _Eval:
        value = node.value
        if value is not None and not isinstance(value, str | int | float | bool):
            raise self.refuse(f"constants of type {type(value).__name__} are not allowed")
        return lambda _record: value

    def unary(self, node: ast.UnaryOp) -> _Eval:
        if isinstance(node.op, ast.Not):
            operand = self.build(node.operand)
            return lambda record: not _truthy(operand(record))
        if (
            isinstance(node.op, ast.USub)
            and isinstance(node.operand, ast.Constant)
            and isinstance(node.operand.value, int | float)
            and not isinstance(node.operand.value, bool)
        ):
            value = -node.operand.value
            return lambda _record: value
        raise self.refuse("arithmetic is not allowed (only 'not', and '-' before a number)")

    def check_name(self, name: str) -> None:
        if name.startswith("__") or name.endswith("__"):
            raise self.refuse(f"dunder names are not allowed: {name}")

    def name(self, node: ast.Name) -> _Eval:
        key = node.id
        self.check_name(key)
        if key in FUNCTIONS:
            raise self.refuse(f"{key} is a function: call it, as in {key}(...)")
        if self.allowed is not None and key not in self.allowed:
            raise self.refuse(f"unknown name {key!r} (known: {', '.join(sorted(self.allowed))})")
        self.names.add(key)

        def read(record: Mapping[str, Any]) -> Any:
            value = record.get(key)
            return None if _missing(value) else value

        return read

    def call(self, node: ast.Call) -> _Eval:
        if not isinstance(node.func, ast.Name):
            raise self.refuse("only calls to the mapping functions by name are allowed")
        func = node.func.id
        self.check_name(func)
        if func not in FUNCTIONS:
            raise self.refuse(
                f"unknown function {func!r} (allowed: {', '.join(sorted(FUNCTIONS))})"
            )
        if node.keywords:
            raise self.refuse(f"{func}() takes positional arguments only")
        if any(isinstance(arg, ast.Starred) for arg in node.args):
            raise self.refuse(f"{func}(): *arguments are not allowed")
        low, high = FUNCTIONS[func]
        count = len(node.args)
        if count < low or (high is not None and count > high):
            wanted = f"at least {low}" if high is None else str(low)
            raise self.refuse(f"{func}() takes {wanted} argument(s), got {count}")
        if func == "split_part":
            self.check_split_part(node.args)
        args = [self.build(arg) for arg in node.args]
        factories: dict[str, Callable[[list[_Eval]], _Eval]] = {
            "concat": self.fn_concat,
            "lower": self.fn_lower,
            "upper": self.fn_upper,
            "trim": self.fn_trim,
            "default": self.fn_default,
            "when": self.fn_when,
            "split_part": self.fn_split_part,
        }
        return factories[func](args)

    def check_split_part(self, args: list[ast.expr]) -> None:
        sep, index = args[1], args[2]
        if isinstance(sep, ast.Constant) and (not isinstance(sep.value, str) or not sep.value):
            raise self.refuse("split_part: the separator must be a non-empty string")
        if isinstance(index, ast.Constant) and (
            isinstance(index.value, bool) or not isinstance(index.value, int) or not index.value
        ):
            raise self.refuse("split_part: the index must be a non-zero integer")

    # -- the functions: each gets its compiled arguments ------------------------------------
    def fn_concat(self, args: list[_Eval]) -> _Eval:
        def concat(record: Mapping[str, Any]) -> str:
            return "".join(str(v) for v in (a(record) for a in args) if not _missing(v))

        return concat

    def fn_lower(self, args: list[_Eval]) -> _Eval:
        (arg,) = args

        def lower(record: Mapping[str, Any]) -> str | None:
            value = _text(arg(record))
            return None if value is None else value.lower()

        return lower

    def fn_upper(self, args: list[_Eval]) -> _Eval:
        (arg,) = args

        def upper(record: Mapping[str, Any]) -> str | None:
            value = _text(arg(record))
            return None if value is None else value.upper()

        return upper

    def fn_trim(self, args: list[_Eval]) -> _Eval:
        (arg,) = args

        def trim(record: Mapping[str, Any]) -> str | None:
            value = _text(arg(record))
            return None if value is None else value.strip()

        return trim

    def fn_default(self, args: list[_Eval]) -> _Eval:
        value_of, fallback_of = args

        def default(record: Mapping[str, Any]) -> Any:
            value = value_of(record)
            return fallback_of(record) if _missing(value) or value == "" else value

        return default

    def fn_when(self, args: list[_Eval]) -> _Eval:
        condition, then, otherwise = args

        def when(record: Mapping[str, Any]) -> Any:
            return then(record) if _truthy(condition(record)) else otherwise(record)

        return when

    def fn_split_part(self, args: list[_Eval]) -> _Eval:
        value_of, sep_of, index_of = args
        text = self.text

        def split_part(record: Mapping[str, Any]) -> Any:
            return _split_part(text, value_of(record), sep_of(record), index_of(record))

        return split_part

    # -- operators ------------------------------------------------------------------------
    def compare(self, node: ast.Compare) -> _Eval:
        for op in node.ops:
            if not isinstance(op, ast.Eq | ast.NotEq):
                raise self.refuse(f"only == and != comparisons are allowed, not {_op(op)}")
        operands = [self.build(node.left), *(self.build(c) for c in node.comparators)]
        equal = [isinstance(op, ast.Eq) for op in node.ops]

        def compare(record: Mapping[str, Any]) -> bool:
            left = operands[0](record)
            for is_eq, right_of in zip(equal, operands[1:], strict=True):
                right = right_of(record)
                if (left == right) != is_eq:
                    return False
                left = right
            return True

        return compare

    def boolop(self, node: ast.BoolOp) -> _Eval:
        values = [self.build(v) for v in node.values]
        if isinstance(node.op, ast.And):

            def all_of(record: Mapping[str, Any]) -> Any:
                result: Any = True
                for value_of in values:
                    result = value_of(record)
                    if not _truthy(result):
                        return result
                return result

            return all_of

        def any_of(record: Mapping[str, Any]) -> Any:
            result: Any = False
            for value_of in values:
                result = value_of(record)
                if _truthy(result):
                    return result
            return result

        return any_of


def _op(op: ast.cmpop) -> str:
    symbols = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Is: "is"}
    symbols.update({ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in"})
    return symbols.get(type(op), type(op).__name__)


_REFUSED: dict[type[ast.AST], str] = {
    ast.Attribute: "attribute access is not allowed",
    ast.Subscript: "subscripts are not allowed",
    ast.Lambda: "lambda is not allowed",
    ast.BinOp: "arithmetic is not allowed (use concat() to join text)",
    ast.IfExp: "'x if c else y' is not allowed: use when(c, x, y)",
    ast.ListComp: "comprehensions are not allowed",
    ast.SetComp: "comprehensions are not allowed",
    ast.DictComp: "comprehensions are not allowed",
    ast.GeneratorExp: "comprehensions are not allowed",
    ast.List: "lists are not allowed",
    ast.Tuple: "tuples are not allowed",
    ast.Set: "sets are not allowed",
    ast.Dict: "dicts are not allowed",
    ast.JoinedStr: "f-strings are not allowed: use concat()",
    ast.NamedExpr: "assignment expressions are not allowed",
    ast.Await: "await is not allowed",
    ast.Yield: "yield is not allowed",
    ast.YieldFrom: "yield is not allowed",
    ast.Starred: "*arguments are not allowed",
}
