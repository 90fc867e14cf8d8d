"""Message templates: the sandbox refuses escapes and file access, limits stop runaway templates,
mistakes name the template and line, and templates render plain data about one customer."""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from persona.activation.templates import Limits, Template, TemplateError, check, context_for, render
from persona.errors import RequestError
from persona.log.events import Event, to_micros
from persona.profiles.profile import Profile
from persona.recommend.models import Scored


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def fails(source: str, context: dict | None = None, **kw: object) -> TemplateError:
    with pytest.raises(TemplateError) as caught:
        render("welcome", source, context or {"items": ["a", "b"], "s": "x" * 60_000}, **kw)  # type: ignore[arg-type]
    return caught.value


@pytest.mark.parametrize("payload", [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ ''.__class__ }}",
    "{{ self.__init__.__globals__ }}",
    "{{ joiner.__init__.__globals__['os'].popen('id').read() }}",
    "{{ dict.__base__.__subclasses__() }}",
    "{{ range.__globals__ }}",
    "{{ cycler.__init__.__globals__.os }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ ''|attr('__class__') }}",
    "{{ items.__class__.__base__.__subclasses__() }}",
    "{{ self._TemplateReference__context }}",
    "{% for c in ''.__class__.__mro__ %}{{ c }}{% endfor %}",
])
def test_escapes_from_the_sandbox_fail_with_a_clear_error(payload: str) -> None:
    error = fails(f"Hello\n{payload}")
    assert error.code == "template_unsafe" and error.line == 2
    assert "is not allowed" in str(error) and str(error).startswith("template 'welcome', line 2: unsafe: access")


def test_the_data_cannot_be_changed() -> None:
    for source in ("{{ items.append('c') }}", "{{ traits.update({'vip': true}) }}", "{{ items.pop() }}"):
        assert fails(source, {"items": ["a"], "traits": {}}).code == "template_unsafe"


@pytest.mark.parametrize(("source", "keyword", "line"), [
    ("{% include '/etc/passwd' %}", "include", 1),
    ("a\n{% import 'macros.html' as m %}", "import", 2),
    ("a\nb\n{% from 'x' import y %}", "from … import", 3),
    ("{% extends 'base.html' %}", "extends", 1),
])
def test_no_other_template_or_file_can_be_read_and_saving_says_so(source: str, keyword: str, line: int) -> None:
    with pytest.raises(TemplateError) as caught:
        check("welcome", source)
    assert (caught.value.code, caught.value.line) == ("template_unsafe", line)
    assert f"`{keyword}` is not allowed" in str(caught.value)


def test_syntax_errors_are_found_on_save_with_their_line() -> None:
    with pytest.raises(TemplateError) as caught:
        check("welcome", "Hi {{ traits.first_name }}\n{% if segments %}\nloyal\n{% endfor %}\n")
    error = caught.value
    assert (error.code, error.line, error.field, error.status) == ("template_syntax", 4, "template", 400)
    assert str(error).startswith("template 'welcome', line 4: ") and "endfor" in str(error)
    assert isinstance(error, RequestError) and error.to_json()["code"] == "template_syntax"
    assert check("welcome", "{{ 'ok' }}").render({}) == "ok"


def test_output_is_limited_while_it_streams() -> None:
    started = time.monotonic()
    error = fails("{% for i in range(10000) %}{{ s }}{% endfor %}")  # 600 MB if nothing stopped it
    assert error.code == "template_too_large" and "output is over the limit of 65,536" in str(error)
    assert time.monotonic() - started < 1
    assert len(render("t", "{% for i in range(1000) %}{{ s }}{% endfor %}", {"s": "x" * 64},
                      limits=Limits(output=64_000))) == 64_000


def test_a_template_of_ten_megabytes_is_refused() -> None:
    for source in ("{{ 'x' * 10000000 }}", "{{ s * 200 }}", "{{ s + s + s + s + s }}",
                   "{% set ns = namespace(s='x') %}{% for i in range(30) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
                   "{% macro grow(s) %}{{ grow(s ~ s) }}{% endmacro %}{{ grow('x') }}",
                   "{{ s|replace('', s) }}", "{{ s.replace('x', s) }}", "{{ 'x'.center(10000000) }}",
                   "{{ 'x'|center(10000000) }}", "{{ '%010000000d' % 1 }}", "{{ '{:>10000000}'.format(1) }}",
                   "{{ '{0:{1}}'.format('x', 10000000) }}", "{{ '%*d'|format(10000000, 1) }}",
                   "{{ s|wordwrap(1, wrapstring=s) }}", "{{ 10 ** 100000 }}",
                   "{{ range(10000)|map('string')|join(s) }}"):
        started = time.monotonic()
        error = fails(source)
        assert error.code == "template_too_large", (source, error)
        assert time.monotonic() - started < 0.5, source


def test_loops_that_never_end_are_stopped_in_time() -> None:
    for source in ("{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",  # writes nothing
                   "{% for a in s %}{% for b in s %}{% endfor %}{% endfor %}",  # over data: 3.6 billion steps
                   "{% for a in s %}{% for b in s %}{{ '' }}{% endfor %}{% endfor %}"):
        started = time.monotonic()
        error = fails(f"line 1\n{source}")
        assert error.code == "template_too_slow" and "took longer than 100 ms" in str(error), source
        assert error.line in (2, None)  # None: caught between two chunks of output, outside the template
        assert time.monotonic() - started < 1
    assert fails("{% for i in range(10000000) %}{% endfor %}").code == "template_too_large"  # range() itself


def test_recursion_and_the_source_size_are_limited() -> None:
    assert fails("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(1) }}").code in (
        "template_too_large", "template_too_slow")
    with pytest.raises(TemplateError, match="over the limit of 65,536") as caught:
        check("big", "x" * 70_000)
    assert caught.value.code == "template_too_large"


def test_a_failure_while_rendering_names_the_line() -> None:
    error = fails("a\nb\n{{ 1 / 0 }}")
    assert (error.code, error.line) == ("template_failed", 3) and "division by zero" in str(error)


def test_a_profile_renders_with_its_segments_traits_scores_event_and_recommendations() -> None:
    profile = Profile(id="p1", created_seq=1, first_seen=to_micros(at("2026-01-02T10:00:00Z")),
                      last_seen=to_micros(at("2026-03-01T10:00:00Z")), event_count=7,
                      traits={"first_name": "Ada", "timezone": "Europe/Paris"},
                      identifiers={"email": ["ada@example.com"], "user_id": ["u1"]})
    profile.orders.count, profile.orders.revenue = 3, 1234.5
    event = Event("src", "m1", "track", "Cart Abandoned", "u1", None, to_micros(at("2026-03-01T09:30:00Z")), 0,
                  {"properties": {"cart_value": 99.9}})
    context = context_for(profile, {"lifetime_orders": 3}, {"loyal", "vip"}, {"rfm_segment": "Champions"}, event,
                          [Scored("sku-1", 0.9, "popular"), {"item_id": "sku-2", "name": "Boots", "reason": "similar"}])
    source = (
        "Hi {{ traits.first_name }},\n"
        "{% if 'loyal' in segments %}Thanks for being loyal ({{ profile.orders.count }} orders, "
        "{{ profile.orders.revenue | money }}).{% endif %}\n"
        "{% if 'churned' in segments %}We miss you.{% endif %}\n"
        "You are one of our {{ scores.rfm_segment }}; {{ traits.lifetime_orders }} orders.\n"
        "Your cart ({{ event.name }}, {{ event.properties.cart_value | money('EUR') }}) "
        "from {{ event.timestamp | date('%d %b %Y %H:%M', tz=traits.timezone) }}.\n"
        "{% for r in recommendations %}- {{ r.name }} ({{ r.reason }})\n{% endfor %}"
        "{{ traits.missing.deeper | default('-') }} {{ profile.identifiers.email[0] }}")
    assert render("cart", source, context) == (
        "Hi Ada,\nThanks for being loyal (3 orders, $1,234.50).\n\nYou are one of our Champions; 3 orders.\n"
        "Your cart (Cart Abandoned, €99.90) from 01 Mar 2026 10:30.\n- sku-1 (popular)\n- Boots (similar)\n"
        "- ada@example.com")
    assert context["segments"] == ["loyal", "vip"] and context["model_traits"] == {"rfm_segment": "Champions"}
    assert context["profile"]["first_seen"] == "2026-01-02T10:00:00.000Z"


def test_the_context_is_plain_data_and_html_templates_escape() -> None:
    context = context_for({"id": "p1", "traits": {"name": "<script>x</script>"}})
    assert context["event"] is None and context["recommendations"] == []
    html = Template("mail", "<p>{{ traits.name }}</p>", html=True)
    assert html.render(context) == "<p>&lt;script&gt;x&lt;/script&gt;</p>"
    assert render("mail", "{{ traits.name }}", context) == "<script>x</script>"  # text is not escaped
    assert render("m", "{{ 1234567.891 | money('SEK', 1) }} {{ -5 | money }} {{ 'x' | money }} "
                       "{{ 0 | date('%Y') }} {{ 'not a date' | date }}", {}) == "1,234,567.9 SEK -$5.00  1970 "
