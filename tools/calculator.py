"""A calculator tool that evaluates arithmetic without ``eval``.

Data flow: expression text -> normalised (``×`` ``÷`` ``^``, thin spaces) -> ``ast.parse``
(expression mode) -> a walk that allows only numbers, arithmetic operators, parentheses and
a few named functions and constants -> a number, or a ``ToolException`` saying what is not
allowed. Sizes are bounded (expression length, exponents, digits) so no input can hang it.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any

from langchain_core.tools import BaseTool, ToolException
from pydantic import BaseModel, Field

__all__ = ["Calculator", "CalculatorInput", "calculate"]

MAX_EXPRESSION = 500
MAX_EXPONENT = 10_000
MAX_DIGITS = 5_000

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "abs": abs,
    "round": round,
    "min": min,
    "max": max,
    "sqrt": math.sqrt,
    "log": math.log,
    "log10": math.log10,
    "exp": math.exp,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "floor": math.floor,
    "ceil": math.ceil,
}
_CONSTANTS = {"pi": math.pi, "e": math.e}
_SPELLINGS = {"×": "*", "÷": "/", "−": "-", "^": "**", "\u202f": "", "\u00a0": ""}


def _number(value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ToolException("only numbers can be computed")
    if isinstance(value, int) and value.bit_length() > MAX_DIGITS * 3.33:
        raise ToolException(f"the result has more than {MAX_DIGITS} digits")
    return value


def _evaluate(node: ast.AST) -> int | float:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant):
        return _number(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
            raise ToolException(f"exponents are limited to {MAX_EXPONENT}")
        try:
            return _number(_BINARY[type(node.op)](left, right))
        except ZeroDivisionError:
            raise ToolException("division by zero") from None
        except OverflowError:
            raise ToolException("the result is too large") from None
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _number(_UNARY[type(node.op)](_evaluate(node.operand)))
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
    ):
        arguments = [_evaluate(argument) for argument in node.args]
        try:
            return _number(_FUNCTIONS[node.func.id](*arguments))
        except (ValueError, TypeError) as exc:
            raise ToolException(f"{node.func.id}(): {exc}") from None
        except OverflowError:
            raise ToolException("the result is too large") from None
    if isinstance(node, ast.Tuple):
        raise ToolException("write numbers without thousands separators (1234567, not 1,234,567)")
    names = ", ".join([*_FUNCTIONS, *_CONSTANTS])
    raise ToolException(
        f"'{ast.unparse(node)}' is not arithmetic: use numbers, + - * / // % ** and "
        f"parentheses, and the names {names}"
    )


def calculate(expression: str) -> int | float:
    """Evaluate an arithmetic expression safely (no ``eval``, bounded sizes)."""
    text = expression.strip()
    for spelling, meaning in _SPELLINGS.items():
        text = text.replace(spelling, meaning)
    if not text:
        raise ToolException("the expression is empty")
    if len(text) > MAX_EXPRESSION:
        raise ToolException(f"the expression is longer than {MAX_EXPRESSION} characters")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        raise ToolException(f"cannot read {expression!r} as arithmetic") from None
    return _evaluate(tree)


class CalculatorInput(BaseModel):
    """Arguments of the calculator."""

    expression: str = Field(
        description="Arithmetic to compute, e.g. '(1250 * 12) / 7' or 'sqrt(2) * 3 ** 2'."
    )


class Calculator(BaseTool):
    """Computes arithmetic exactly, so the model does not have to."""

    name: str = "calculator"
    description: str = (
        "Compute an arithmetic expression. Supports + - * / // % ** (or ^), parentheses, "
        "sqrt, log, log10, exp, sin, cos, tan, abs, round, min, max, floor, ceil, pi, e."
    )
    args_schema: type[BaseModel] = CalculatorInput
    handle_tool_error: bool = True  # the model reads what was wrong and can try again

    def _run(self, expression: str, **_: Any) -> str:
        value = calculate(expression)
        if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(value) if isinstance(value, float) else str(value)
