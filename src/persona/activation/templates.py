"""Message templates: Jinja2 rendered in a sandbox, with limits, over plain data about one customer.

A template is written by whoever configures a campaign, not by us, so it is treated as
untrusted code. It runs in Jinja's `ImmutableSandboxedEnvironment` (no attribute that starts
with `_`, no `__class__.__mro__` walk to `os`, no mutation of the data it is given) and
additionally:

- reads nothing but its own string: no loader, and `include`, `import`, `from` and `extends`
  are refused when the template is saved;
- is bounded: its source (`Limits.source`), what it writes (`Limits.output`, counted while
  `generate()` streams and stopped as soon as it is exceeded), its time (`Limits.seconds`,
  checked as it streams, at every loop step and every call, so a loop that writes nothing is
  stopped too), `range()` (`Limits.range`), and the values it can build: `*`, `+`, `**`, `%`,
  namespace attributes, filters and string methods that would make a value larger than
  `Limits.value` are refused before they run;
- sees only plain dicts, lists, strings and numbers (`context_for`), never our objects.

Every failure is a `TemplateError` that names the template and, where known, the line.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from types import TracebackType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2
import msgspec
from jinja2 import nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from jinja2.utils import Namespace

from persona.errors import RequestError
from persona.log.events import Event, iso
from persona.profiles.profile import Profile
from persona.profiles.reader import profile_json


class TemplateError(RequestError):
    """A template that does not compile, is unsafe, or failed or overran a limit while rendering."""

    code = "invalid_template"

    def __init__(self, template: str, message: str, *, line: int | None = None, code: str | None = None) -> None:
        where = f"template {template!r}" + (f", line {line}" if line is not None else "")
        super().__init__(f"{where}: {message}", field="template", code=code)
        self.template = template
        self.line = line
        self.reason = message


@dataclass(frozen=True)
class Limits:
    source: int = 64 * 1024      # characters of template source
    output: int = 64 * 1024      # characters a render may write
    seconds: float = 0.1         # wall time of one render (compiling is not counted)
    range: int = 10_000          # items one range() may have
    value: int = 256 * 1024      # characters (or items) of any value the template builds


DEFAULT_LIMITS = Limits()
_FORBIDDEN_NODES = (nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)
_CHECK_EVERY = 256  # loop steps between two looks at the clock
_WIDTH = re.compile(r"\d+")
_NESTED_SPEC = re.compile(r"\{[^{}]*:[^{}]*\{")


class _Overrun(Exception):
    """A limit hit while rendering; turned into a TemplateError with the template's line."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class _Budget:
    limits: Limits
    deadline: float
    steps: int = 0

    def tick(self) -> None:
        self.steps += 1
        if self.steps % _CHECK_EVERY == 0:
            self.check_time()

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise _Overrun(f"took longer than {self.limits.seconds * 1000:.0f} ms", "template_too_slow")


_budget: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("template_budget", default=None)


def _limits() -> Limits:
    budget = _budget.get()
    return budget.limits if budget is not None else DEFAULT_LIMITS


def _size(value: Any) -> int:
    return len(value) if isinstance(value, str | bytes | list | tuple | dict | set | frozenset) else 0


def _check_value(value: Any) -> Any:
    if _size(value) > _limits().value:
        raise _Overrun(f"a value of {_size(value):,} characters or items is over the limit of {_limits().value:,}",
                       "template_too_large")
    return value


def _check_widths(fmt: Any, args: Iterable[Any] = ()) -> None:
    """`"%0999999999d" % 1`, `"{:>999999999}".format(1)`: a width in a format string is an allocation,
    and so is a number given for a width (`"%*d"`, `"{0:{1}}"`)."""
    if not isinstance(fmt, str):
        return
    if any(len(n) > 12 or int(n) > _limits().value for n in _WIDTH.findall(fmt)):
        raise _Overrun("a width in the format string is over the value limit", "template_too_large")
    if "*" in fmt or _NESTED_SPEC.search(fmt):
        flat = [a for arg in args for a in (arg if isinstance(arg, tuple | list) else (arg,))]
        if any(isinstance(a, int) and abs(a) > _limits().value for a in flat):
            raise _Overrun("a width given to the format is over the value limit", "template_too_large")


def _check_arguments(subject: Any, args: Iterable[Any]) -> None:
    """Refuse an operation whose result could be as large as its subject times an argument
    (`s|replace("", s)`, `items|join(s)`, `s|wordwrap(1, wrapstring=s)`)."""
    largest = max((_size(a) for a in args), default=0)
    if largest and _size(subject) * largest > _limits().value:
        raise _Overrun("the result would be over the value limit", "template_too_large")


_WIDTH_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})
_WIDTH_FILTERS = frozenset({"center", "indent", "truncate", "wordwrap"})


def _guard_filter(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """A built-in filter with its arguments checked before it runs and its result after."""
    passes_arg = hasattr(fn, "jinja_pass_arg")

    @functools.wraps(fn)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        first = 1 if passes_arg else 0
        if name == "join" and len(args) > first and not isinstance(args[first], str | list | tuple):
            args = (*args[:first], _check_value(list(args[first])), *args[first + 1:])  # sized, to be checked
        subject, *rest = args[first:]
        rest += list(kwargs.values())
        if name in _WIDTH_FILTERS and any(isinstance(a, int) and a > _limits().value for a in rest):
            raise _Overrun(f"a width given to `{name}` is over the value limit", "template_too_large")
        if name == "format":
            _check_widths(subject, rest)
        _check_arguments(subject, rest)
        return _check_value(fn(*args, **kwargs))

    return guarded


def _range(*args: int) -> Iterator[int]:
    numbers = range(*args)
    if len(numbers) > _limits().range:
        raise _Overrun(f"range() of {len(numbers):,} items is over the limit of {_limits().range:,}",
                       "template_too_large")
    return iter(numbers)


class _Namespace(Namespace):
    """`namespace()` whose attributes cannot grow without bound (`{% set ns.s = ns.s ~ ns.s %}` in a loop)."""

    def __setitem__(self, name: str, value: Any) -> None:
        super().__setitem__(name, _check_value(value))


def _loop_guard(iterable: Iterable[Any]) -> Iterator[Any]:
    """Every `{% for %}` iterates through this (see `_guard_loops`): the clock is looked at as it
    goes, so nested loops that write nothing are stopped too."""
    budget = _budget.get()
    for item in iterable:
        if budget is not None:
            budget.tick()
        yield item


_LOOP_GUARD = "_persona_loop_guard"  # a filter the AST rewrite (`_guard_loops`) puts around every loop


class _Environment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "+", "**", "%"})

    def call_binop(self, context: jinja2.runtime.Context, operator_: str, left: Any, right: Any) -> Any:
        if operator_ == "*":
            for seq, n in ((left, right), (right, left)):
                if _size(seq) and isinstance(n, int) and _size(seq) * n > _limits().value:
                    raise _Overrun("a repeated value would be over the value limit", "template_too_large")
        elif operator_ == "+" and _size(left) + _size(right) > _limits().value:
            raise _Overrun("a concatenated value would be over the value limit", "template_too_large")
        elif operator_ == "**" and isinstance(right, int | float) and isinstance(left, int | float):
            if abs(left) > 1 and right * math.log2(abs(left)) > 4096:
                raise _Overrun("a power that large is not computed", "template_too_large")
        elif operator_ == "%":
            _check_widths(left, [right])
        return _check_value(super().call_binop(context, operator_, left, right))

    def call(__self, __context: jinja2.runtime.Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        budget = _budget.get()
        if budget is not None:
            budget.check_time()
        values = [*args, *kwargs.values()]
        for value in values:  # a macro recursing with a value that doubles each time
            _check_value(value)
        method = getattr(__obj, "__wrapped__", __obj)  # the sandbox wraps str.format
        owner = getattr(method, "__self__", None)
        if isinstance(owner, str):
            name = getattr(method, "__name__", "")
            if name in _WIDTH_METHODS and any(isinstance(a, int) and a > _limits().value for a in values):
                raise _Overrun(f"a width given to `{name}` is over the value limit", "template_too_large")
            if name in ("format", "format_map"):
                _check_widths(owner, values)
            _check_arguments(owner, values)
        return _check_value(super().call(__context, __obj, *args, **kwargs))

    def unsafe_undefined(self, obj: Any, attribute: str) -> jinja2.Undefined:
        raise SecurityError(f"access to attribute {attribute!r} of a {type(obj).__name__} is not allowed")


@functools.cache
def _environment(autoescape: bool) -> _Environment:
    # Jinja's whitespace defaults (no trim_blocks): what its documentation describes is what happens.
    env = _Environment(loader=None, autoescape=autoescape, undefined=jinja2.ChainableUndefined)
    env.filters = {name: _guard_filter(name, fn) for name, fn in env.filters.items()}
    env.filters.update(money=money, date=format_date, datetime=format_date, **{_LOOP_GUARD: _loop_guard})
    env.globals.update(range=_range, namespace=_Namespace)
    del env.globals["lipsum"]  # lorem ipsum of any length, in one call: nothing a message needs
    return env


def _guard_loops(tree: nodes.Template) -> nodes.Template:
    for loop in tree.find_all(nodes.For):
        loop.iter = nodes.Filter(loop.iter, _LOOP_GUARD, [], [], None, None, lineno=loop.lineno)
    return tree


class Template:
    """A checked template, compiled once; `render` it with a `context_for` dict. `html` escapes
    what it writes (`{{ x }}` of "<b>" writes "&lt;b&gt;")."""

    def __init__(self, name: str, source: str, *, html: bool = False, limits: Limits = DEFAULT_LIMITS) -> None:
        self.name, self.source, self.html, self.limits = name, source, html, limits
        self._compiled = _compile(name, source, html, limits.source)

    def render(self, context: Mapping[str, Any]) -> str:
        compiled = self._compiled
        budget = _Budget(self.limits, time.monotonic() + self.limits.seconds)
        token = _budget.set(budget)
        out: list[str] = []
        written = 0
        stream = compiled.generate(dict(context))
        try:
            for chunk in stream:
                written += len(chunk)
                if written > self.limits.output:
                    raise TemplateError(self.name, f"output is over the limit of {self.limits.output:,} characters",
                                        code="template_too_large")
                budget.check_time()
                out.append(chunk)
        except (_Overrun, SecurityError, jinja2.TemplateError, RecursionError, ArithmeticError, TypeError,
                ValueError, LookupError, AttributeError) as exc:
            raise _render_error(self.name, exc) from None
        finally:
            stream.close()
            _budget.reset(token)
        return "".join(out)


def check(name: str, source: str, *, html: bool = False, limits: Limits = DEFAULT_LIMITS) -> Template:
    """Validate a template as it is saved: its size, its syntax and what it may use (line numbers
    in the error); returns it compiled."""
    return Template(name, source, html=html, limits=limits)


def render(name: str, source: str, context: Mapping[str, Any], *, html: bool = False,
           limits: Limits = DEFAULT_LIMITS) -> str:
    return check(name, source, html=html, limits=limits).render(context)


def json_templates(content: Any, path: str) -> Iterator[tuple[str, str]]:
    """Every string in a JSON value (content, a payload) with its path: each is a template."""
    if isinstance(content, str):
        yield path, content
    elif isinstance(content, dict):
        for key, value in content.items():
            yield from json_templates(value, f"{path}.{key}")
    elif isinstance(content, list):
        for i, value in enumerate(content):
            yield from json_templates(value, f"{path}[{i}]")


def check_json(content: Any, path: str) -> None:
    """Check every string of a JSON value as a template; the first mistake names its path."""
    for where, source in json_templates(content, path):
        check(where, source)


def render_json(content: Any, context: Callable[[], Mapping[str, Any]], path: str) -> Any:
    """The JSON value with every string rendered; `context` is asked only if a string is a
    template (one without braces, and without a final newline for Jinja to drop, is itself)."""
    if isinstance(content, str):
        if "{" not in content and not content.endswith("\n"):
            return content
        return check(path, content).render(context())
    if isinstance(content, dict):
        return {key: render_json(value, context, f"{path}.{key}") for key, value in content.items()}
    if isinstance(content, list):
        return [render_json(value, context, f"{path}[{i}]") for i, value in enumerate(content)]
    return content


@functools.lru_cache(maxsize=256)
def _compile(name: str, source: str, html: bool, max_source: int) -> jinja2.Template:
    if not isinstance(source, str):
        raise TemplateError(name, "the template must be a string")
    if len(source) > max_source:
        raise TemplateError(name, f"the template is {len(source):,} characters, over the limit of {max_source:,}",
                            code="template_too_large")
    env = _environment(html)
    try:
        tree = env.parse(source, name, _filename(name))
        for node in tree.find_all(_FORBIDDEN_NODES):
            keyword = {"Include": "include", "Import": "import", "FromImport": "from … import",
                       "Extends": "extends"}[type(node).__name__]
            raise TemplateError(name, f"`{keyword}` is not allowed: a template cannot read other templates or files",
                                line=node.lineno, code="template_unsafe")
        code = env.compile(_guard_loops(tree), name, _filename(name))
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(name, exc.message or "syntax error", line=exc.lineno, code="template_syntax") from None
    return env.template_class.from_code(env, code, env.make_globals(None))


def _filename(name: str) -> str:
    return f"<template {name}>"


def _render_error(name: str, exc: BaseException) -> TemplateError:
    if isinstance(exc, TemplateError):
        return exc
    line = _template_line(name, exc.__traceback__)
    if isinstance(exc, _Overrun):
        return TemplateError(name, str(exc), line=line, code=exc.code)
    if isinstance(exc, SecurityError):
        return TemplateError(name, f"unsafe: {exc}", line=line, code="template_unsafe")
    if isinstance(exc, RecursionError):
        return TemplateError(name, "recursion too deep", line=line, code="template_too_large")
    message = getattr(exc, "message", None) or str(exc)
    return TemplateError(name, f"{message} ({type(exc).__name__})", line=line, code="template_failed")


def _template_line(name: str, tb: TracebackType | None) -> int | None:
    """The template line of the innermost frame of this template in a traceback Jinja rewrote."""
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == _filename(name):
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


# -- the data a template sees ----------------------------------------------------------------------
def context_for(profile: Profile | Mapping[str, Any], computed_traits: Mapping[str, Any] | None = None,
                segments: Iterable[str] = (), model_traits: Mapping[str, Any] | None = None,
                event: Event | Mapping[str, Any] | None = None,
                recommendations: Iterable[Any] = ()) -> dict[str, Any]:
    """What a template renders with, as plain JSON data (copied: the template sees no object of ours):

    - `profile`: id, traits, identifiers, counters (`event_count`, `event_counts`, `orders`), first
      and last seen (ISO strings), as `GET /v1/profiles/{id}` shows it;
    - `traits`: the profile's traits with the computed traits over them; `computed_traits` alone too;
    - `segments`: the ids of the audiences the profile is in, sorted (`{% if "loyal" in segments %}`);
    - `scores` and `model_traits`: the traits scheduled jobs computed (RFM, persona);
    - `event`: the triggering event's `name`, `type`, `properties` and `timestamp` (ISO), or None;
    - `recommendations`: a list of `{item_id, name, reason}` (from `Scored` or mappings).
    """
    body = profile_json(profile) if isinstance(profile, Profile) else dict(profile)
    shown = {key: body.get(key) for key in ("id", "traits", "identifiers", "event_count", "event_counts", "orders",
                                            "first_seen", "last_seen")}
    computed = dict(computed_traits or {})
    scores = dict(model_traits or {})
    context = {
        "profile": shown,
        "traits": {**(shown.get("traits") or {}), **computed},
        "computed_traits": computed,
        "segments": sorted(set(segments)),
        "scores": scores,
        "model_traits": scores,
        "event": _event_json(event),
        "recommendations": [_recommendation_json(r) for r in recommendations],
    }
    return msgspec.json.decode(msgspec.json.encode(context))  # plain data, and a copy


def _event_json(event: Event | Mapping[str, Any] | None) -> dict[str, Any] | None:
    if event is None:
        return None
    if isinstance(event, Event):
        properties = event.body.get("properties")
        return {"name": event.name or event.type, "type": event.type,
                "properties": properties if isinstance(properties, dict) else {}, "timestamp": iso(event.timestamp)}
    return {"name": event.get("name") or event.get("event") or event.get("type"), "type": event.get("type"),
            "properties": dict(event.get("properties") or {}), "timestamp": event.get("timestamp")}


def _recommendation_json(item: Any) -> dict[str, Any]:
    get = item.get if isinstance(item, Mapping) else functools.partial(getattr, item)
    item_id = get("item_id", None)
    return {"item_id": item_id, "name": get("name", None) or item_id, "reason": get("reason", None)}


# -- filters ---------------------------------------------------------------------------------------
_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "INR": "₹"}


def money(value: Any, currency: str = "USD", places: int = 2) -> str:
    """`{{ 1234.5 | money }}` → "$1,234.50"; `{{ x | money("SEK") }}` → "1,234.50 SEK"."""
    try:
        amount = float(value)
    except (TypeError, ValueError):
        return ""
    if not math.isfinite(amount):
        return ""
    places = max(0, min(int(places), 6))
    text = f"{abs(amount):,.{places}f}"
    code = str(currency).upper()[:8]
    sign = "-" if amount < 0 else ""
    symbol = _SYMBOLS.get(code)
    return f"{sign}{symbol}{text}" if symbol else f"{sign}{text} {code}"


def format_date(value: Any, fmt: str = "%Y-%m-%d", tz: str | None = None) -> str:
    """`{{ event.timestamp | date("%d %b %Y") }}`: an ISO string, a datetime or a date, or epoch
    seconds; in the time zone `tz` when given (else as it is, UTC for epoch seconds)."""
    moment = _as_datetime(value)
    if moment is None:
        return ""
    if tz and isinstance(moment, datetime):
        with contextlib.suppress(ZoneInfoNotFoundError, ValueError):
            moment = moment.astimezone(ZoneInfo(str(tz)))
    if not isinstance(fmt, str) or len(fmt) > 200:
        return ""
    return moment.strftime(fmt)


def _as_datetime(value: Any) -> datetime | date | None:
    if isinstance(value, datetime | date):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None

