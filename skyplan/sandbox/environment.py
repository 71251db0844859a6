"""The jinja2 side of the template limits: a sandbox whose every step is checked.

Checked cooperatively, so that it works in any thread (status probes render in a pool) and costs
nothing outside templates:

- time: a deadline (skyplan.sandbox.budget) checked at every loop step (the code generator wraps
  each `for` iterable), sandboxed call, intercepted operator, filter, `~` and include;
- size: the rendered text is streamed and stopped past `output_chars`; steps that could build a
  huge value, or walk one for ever, in one C-level step (`**`, `*`, `%` widths, printing,
  comparing, hashing a tuple…) are estimated before they run (skyplan.sandbox.sizes);
- recursion: macro calls and includes nested deeper than `depth`, and Python's RecursionError.

Every failure comes out of `render` as one TemplateFailure with the line jinja2 gives.
"""

from __future__ import annotations

import operator
import sys
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from jinja2 import nodes, pass_context, pass_environment
from jinja2.compiler import CodeGenerator
from jinja2.exceptions import SecurityError, TemplateError, TemplateSyntaxError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment

from skyplan.sandbox import LimitExceeded, Limits, TemplateFailure
from skyplan.sandbox.budget import Budget, active, running, tick
from skyplan.sandbox.sizes import (
    check_filter,
    check_format_string,
    check_compare,
    check_method_call,
    check_power,
    check_printable,
    check_printf,
    check_product,
    check_sum,
    check_value,
    too_long,
)

_LOOP_FILTER = "__skyplan_steps"

_COMPARISONS = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "gteq": operator.ge,
    "lt": operator.lt,
    "lteq": operator.le,
    "in": lambda item, container: item in container,
    "notin": lambda item, container: item not in container,
}


class _LimitedCodeGenerator(CodeGenerator):
    """Compiles templates so that every loop step and every `~` passes through the limits."""

    def visit_Template(self, node: nodes.Template, frame=None) -> None:  # type: ignore[override]
        # A nested `for` over two plain lists calls nothing per step: count the steps themselves.
        # Done before jinja2 collects the filters the template uses, so it finds this one too.
        for loop in node.find_all(nodes.For):
            if not (isinstance(loop.iter, nodes.Filter) and loop.iter.name == _LOOP_FILTER):
                loop.iter = nodes.Filter(loop.iter, _LOOP_FILTER, [], [], None, None, lineno=loop.iter.lineno)
        super().visit_Template(node, frame)

    def visit_Compare(self, node: nodes.Compare, frame) -> None:  # type: ignore[override]
        # Comparing two huge nested lists is one C-level step: measured first. A chain such as
        # `a < b < c` evaluates every operand (jinja2 would skip `c` when `a < b` is false).
        self.write("environment.limited_compare((")
        self.visit(node.expr, frame)
        for operand in node.ops:
            self.write(", ")
            self.visit(operand.expr, frame)
        self.write(f",), {tuple(operand.op for operand in node.ops)!r})")

    def visit_Tuple(self, node: nodes.Tuple, frame) -> None:  # type: ignore[override]
        # Hashing a tuple walks it whole, every time (a dict key, `in`, |unique): a tuple that
        # holds itself twice, sixty times over, would take for ever. Every tuple built is measured.
        if node.ctx != "load":
            return super().visit_Tuple(node, frame)
        self.write("environment.limited_tuple(")
        super().visit_Tuple(node, frame)
        self.write(")")

    def visit_Concat(self, node: nodes.Concat, frame) -> None:  # type: ignore[override]
        self.write("environment.limited_concat(context, (")
        for argument in node.nodes:
            self.visit(argument, frame)
            self.write(", ")
        # The same join function jinja2's own visit_Concat picks.
        if frame.eval_ctx.volatile:
            self.write("), (markup_join if context.eval_ctx.volatile else str_join))")
        elif frame.eval_ctx.autoescape:
            self.write("), markup_join)")
        else:
            self.write("), str_join)")


class LimitedEnvironment(SandboxedEnvironment):
    """A SandboxedEnvironment whose renders are held to `limits` (use `render` below)."""

    code_generator_class = _LimitedCodeGenerator
    intercepted_binops = frozenset({"+", "*", "**", "%"})

    def __init__(self, limits: Limits, *, filters: Mapping[str, Any] | None = None, **options: Any):
        options.setdefault("autoescape", False)
        super().__init__(finalize=_finalize, **options)
        self.limits = limits
        self.globals.pop("lipsum", None)  # a Python-level loop of any length, and no use here
        self.filters.update(filters or {})
        self.filters = {name: _limited_filter(name, function) for name, function in self.filters.items()}
        self.filters[_LOOP_FILTER] = _steps

    def call_binop(self, context, symbol: str, left: Any, right: Any) -> Any:  # type: ignore[override]
        tick()
        if symbol == "**":
            check_power(left, right)
        elif symbol == "*":
            check_product(left, right, self.limits)
        elif symbol == "+":
            check_sum(left, right, self.limits)
        elif symbol == "%":
            check_printf(left, right, self.limits)
        result = check_value(self.binop_table[symbol](left, right), self.limits)
        if isinstance(result, tuple):
            check_printable(result, self.limits, "a tuple")  # see visit_Tuple
        return result

    def call(__self, __context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]  # noqa: N805
        tick()
        check_method_call(__obj, args, kwargs, __self.limits)
        budget: Budget | None = active()
        if budget is None:  # compiling: jinja2 calls nothing then, but this must not count it
            return check_value(super().call(__context, __obj, *args, **kwargs), __self.limits)
        # Macros, caller() and recursive loops are calls: nesting them is what recursion is.
        budget.calls += 1
        try:
            if budget.calls > __self.limits.depth:
                raise LimitExceeded(f"calls nested more than {__self.limits.depth} deep (a macro calling itself?)")
            result = super().call(__context, __obj, *args, **kwargs)
        finally:
            budget.calls -= 1
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, (list, dict, set)):
            check_value(owner, __self.limits)
        return check_value(result, __self.limits)

    def wrap_str_format(self, value: Any):  # type: ignore[override]
        formatter = super().wrap_str_format(value)
        if formatter is None:
            return None
        fmt = value.__self__
        limits = self.limits

        def limited_format(*args: Any, **kwargs: Any) -> str:
            check_format_string(fmt, limits)
            for argument in (*args, *kwargs.values()):
                check_printable(argument, limits)
            return check_value(formatter(*args, **kwargs), limits)

        return limited_format

    def get_template(self, name, parent=None, globals=None):  # type: ignore[override]
        if active() is not None:
            tick()
            # Includes and imports run the included template's `root` inside the includer's.
            depth, frame = 0, sys._getframe(1)
            while frame is not None:
                if frame.f_code.co_name == "root" and frame.f_globals.get("environment") is self:
                    depth += 1
                frame = frame.f_back
            if depth >= self.limits.depth:
                raise LimitExceeded(
                    f"includes or imports nested more than {self.limits.depth} deep (a template including itself?)"
                )
        return super().get_template(name, parent, globals)

    def limited_compare(self, operands: tuple, operators: tuple[str, ...]) -> bool:
        """`a == b`, `a in b`, `a < b < c`…, with `a` and `b` measured first."""
        for left, operator_name, right in zip(operands, operators, operands[1:]):
            check_compare(left, right, self.limits)
            if not _COMPARISONS[operator_name](left, right):
                return False
        return True

    def limited_tuple(self, value: tuple) -> tuple:
        check_printable(value, self.limits, "a tuple")
        return value

    def limited_concat(self, context, parts: tuple, join) -> str:
        """`a ~ b`: measured before it is joined."""
        tick()
        size = 0
        for part in parts:
            if isinstance(part, str):
                size += len(part)
            else:
                check_printable(part, self.limits)
        if size > self.limits.output_chars:
            raise too_long("a joined string", size, self.limits.output_chars)
        return check_value(join(parts), self.limits)


@pass_environment
def _finalize(environment: LimitedEnvironment, value: Any) -> Any:
    # Every `{{ … }}` passes here before it is turned into text.
    check_printable(value, environment.limits)
    return value


@pass_context
def _steps(context, iterable: Iterable[Any]) -> Iterator[Any]:
    # pass_context also keeps jinja2 from running the loop at compile time to fold constants.
    for item in iterable:
        tick()
        yield item


def _limited_filter(name: str, function: Any) -> Any:
    passes = getattr(getattr(function, "jinja_pass_arg", None), "name", None)

    # Always pass_context: that keeps the filter out of compile-time constant folding, which
    # would run it with no limits at all.
    @pass_context
    def limited(context, *args: Any, **kwargs: Any) -> Any:
        tick()
        limits = context.environment.limits
        check_filter(name, args, kwargs, limits)
        if passes == "context":
            result = function(context, *args, **kwargs)
        elif passes == "eval_context":
            result = function(context.eval_ctx, *args, **kwargs)
        elif passes == "environment":
            result = function(context.environment, *args, **kwargs)
        else:
            result = function(*args, **kwargs)
        return check_value(result, limits)

    limited.__name__ = getattr(function, "__name__", name)
    limited.__doc__ = getattr(function, "__doc__", None)
    return limited


# -- rendering ---------------------------------------------------------------------------------


def compile_template(environment: LimitedEnvironment, text: str, name: str | None = None):
    """The template of `text` (loaded through the environment's loader when `name` is given)."""
    try:
        if name is not None and environment.loader is not None:
            return environment.get_template(name)
        return environment.from_string(text)
    except TemplateSyntaxError as exc:
        raise TemplateFailure(exc.message or "syntax error", exc.lineno, kind="syntax") from None
    except RecursionError:
        raise TemplateFailure("nested too deeply to compile", kind="limit") from None


def render(template, context: Mapping[str, Any]) -> str:
    """Render `template` (from `compile_template`) within its environment's limits."""
    limits: Limits = template.environment.limits
    try:
        with running(limits):
            return _stream(template, context, limits)
    except LimitExceeded as exc:
        raise TemplateFailure(str(exc), _line(exc, template), kind="limit") from None
    except RecursionError as exc:
        reason = "recursion too deep (a macro or include calling itself, or a value nested thousands deep)"
        raise TemplateFailure(reason, _line(exc, template), kind="limit") from None
    except MemoryError as exc:
        reason = f"out of memory while rendering (the limit is {limits.memory_bytes // (1024 * 1024)} MiB)"
        raise TemplateFailure(reason, _line(exc, template), kind="limit") from None
    except UndefinedError as exc:
        raise TemplateFailure(exc.message or "undefined", _line(exc, template), kind="undefined") from None
    except SecurityError as exc:
        raise TemplateFailure(f"not allowed: {exc}", _line(exc, template), kind="not allowed") from None
    except TemplateSyntaxError as exc:  # an include's own syntax
        raise TemplateFailure(exc.message or "syntax error", exc.lineno, kind="syntax") from None
    except TemplateError as exc:
        raise TemplateFailure(exc.message or type(exc).__name__, _line(exc, template)) from None
    except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as exc:
        raise TemplateFailure(f"{type(exc).__name__}: {exc}", _line(exc, template)) from None


def _stream(template, context: Mapping[str, Any], limits: Limits) -> str:
    chunks: list[str] = []
    size = 0
    stream = template.generate(context)
    try:
        for chunk in stream:
            size += len(chunk)
            if size > limits.output_chars:
                # Thrown in at the `yield`, so the error carries the line that crossed it.
                too_much = f"output longer than {limits.output_chars} characters (the output limit)"
                stream.throw(LimitExceeded(too_much))
            chunks.append(chunk)
    finally:
        stream.close()
    return "".join(chunks)


def _line(exc: BaseException, template) -> int | None:
    # jinja2 rewrites tracebacks so that template frames carry the template's name and line.
    filename = template.filename or "<template>"
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line
