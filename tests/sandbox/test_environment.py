"""The limited sandbox on its own: ordinary templates render as before, hostile steps are refused.

The cases here cannot hang when a check regresses (they would allocate or print instead); the
ones that would, loops and powers, run under a subprocess timeout in tests/config/test_template_limits.py.
"""

from __future__ import annotations

import signal
import threading
import time

import pytest
from jinja2 import StrictUndefined

from skyplan.sandbox import Limits, TemplateFailure
from skyplan.sandbox.environment import LimitedEnvironment, compile_template, render

SMALL = Limits(seconds=5.0, output_chars=10_000, items=1_000, depth=8)


def rendered(text: str, limits: Limits = SMALL, **context) -> str:
    env = LimitedEnvironment(limits, undefined=StrictUndefined)
    return render(compile_template(env, text), context)


def failure(text: str, limits: Limits = SMALL, **context) -> TemplateFailure:
    with pytest.raises(TemplateFailure) as caught:
        rendered(text, limits, **context)
    return caught.value


@pytest.mark.parametrize(
    ("text", "context", "expected"),
    [
        ("{% for x in 'abc' %}{{ loop.index }}/{{ loop.length }}{{ ',' if not loop.last }}{% endfor %}", {}, "1/3,2/3,3/3"),
        ("{% for k, v in d|dictsort %}{{ k }}={{ v }} {% endfor %}", {"d": {"b": 2, "a": 1}}, "a=1 b=2 "),
        ("{% for x in [1, 2, 3] if x > 1 %}{{ x }}{% else %}none{% endfor %}", {}, "23"),
        ("{% for x in [] %}{{ x }}{% else %}none{% endfor %}", {}, "none"),
        ("{% for x in [1, [2, [3]]] recursive %}{% if x is iterable %}{{ loop(x) }}{% else %}{{ x }}{% endif %}{% endfor %}", {}, "123"),
        ("{% set ns = namespace(n=1) %}{% for _ in range(10) %}{% set ns.n = ns.n * 2 %}{% endfor %}{{ ns.n }}", {}, "1024"),
        ("{% macro pair(a, b) %}{{ a }}-{{ b }}{% endmacro %}{{ pair(1, 2) }} {{ pair('x', 'y')|upper }}", {}, "1-2 X-Y"),
        ("{{ 'a' ~ 1 ~ [2] }} {{ 'ab' * 3 }} {{ [1] + [2] }} {{ 2 ** 64 }} {{ '%03d|%s' % (7, 'x') }} {{ '{:>4}'.format(1) }}", {}, "a1[2] ababab [1, 2] 18446744073709551616 007|x    1"),
        ("{{ regions|map(attribute='name')|join(', ') }} {{ regions|length }}", {"regions": [{"name": "eu"}, {"name": "us"}]}, "eu, us 2"),
        ("{{ 'x'|center(5) }}|{{ 'a\nb'|indent(2, first=True) }}|{{ 'aXa'|replace('a', 'bb') }}", {}, "  x  |  a\n  b|bbXbb"),
        ("{% autoescape true %}{{ '<a>' ~ 'b' }}{% endautoescape %}", {}, "&lt;a&gt;b"),
        ("{{ subnets }} {{ subnets|tojson }}", {"subnets": ["10.0.0.0/8"]}, "['10.0.0.0/8'] [\"10.0.0.0/8\"]"),
    ],
)
def test_ordinary_templates_render_as_jinja2_renders_them(text, context, expected):
    assert rendered(text, **context) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{{ 'x' * 20000 }}", "a repeated str would be 20000 characters long; the limit is 10000"),
        ("{{ [0] * 2000 }}", "a repeated list would be 2000 items long; the limit is 1000"),
        ("{{ 'x' * 6000 + 'y' * 6000 }}", "a sum would be 12000 characters long; the limit is 10000"),
        ("{{ 'x'|center(20000) }}", "a centred string would be 20000 characters long; the limit is 10000"),
        ("{{ ('a\\n' * 3000)|indent(4) }}", "an indented string would be 12004 characters long; the limit is 10000"),
        ("{{ ('x' * 100)|replace('x', 'y' * 200) }}", "a replaced string would be 20000 characters long; the limit is 10000"),
        ("{{ ('x' * 100).replace('x', 'y' * 200) }}", "a replaced string would be 20000 characters long; the limit is 10000"),
        ("{{ ('-' * 100).join(range(200)) }}", "a joined string would be 19900 characters long; the limit is 10000"),
        ("{{ 'x'.zfill(20000) }}", "str.zfill would be 20000 characters long; the limit is 10000"),
        ("{{ '%*d' % (5, 1) }}", "a '*' width or precision in a % format is not allowed in templates"),
        ("{{ '%.20000f'|format(1.5) }}", "a formatted field would be 20000 characters long; the limit is 10000"),
        ("{{ '{:{}}'.format(1, 20000) }}", "a nested '{…}' format spec is not allowed in templates"),
        ("{{ [1]|batch(5000, 0)|list }}", "a batch would be 5000 items long; the limit is 1000"),
        ("{{ [1]|slice(5000)|list }}", "a slice would be 5000 items long; the limit is 1000"),
        ("{{ [1]|tojson(indent=100000) }}", "a tojson indent of more than 1000"),
        ("{% set l = [0] %}{% for _ in range(20) %}{{ l.extend(l) }}{% endfor %}", "a collection would be 1024 items long; the limit is 1000"),
        ("{% set d = {'a': 'x' * 5000} %}{{ [d, d, d] }}", "printing a value would be …"),
        ("{% set s = 'x' * 4000 %}{{ s ~ s ~ s }}", "a joined string would be 12000 characters long; the limit is 10000"),
        ("{% macro m(n) %}{{ m(n + 1) }}{% endmacro %}{{ m(0) }}", "calls nested more than 8 deep (a macro calling itself?)"),
        ("{{ 10 ** 5000 }}", "an integer of more than 4096 bits (a power)"),
    ],
)
def test_a_step_that_would_build_a_huge_value_is_refused_before_it_runs(text, reason):
    found = failure(text)
    assert found.kind == "limit"
    assert found.reason.startswith(reason[:-1]) if reason.endswith("…") else found.reason == reason
    assert found.line == 1


def test_the_error_carries_the_line_of_the_template_that_crossed_the_limit():
    found = failure("ok\n{% for i in range(5) %}\n{{ i }}\n{% endfor %}\n{{ 'x' * 99999 }}\n")
    assert (found.kind, found.line) == ("limit", 5)
    found = failure("{% for i in range(1000) %}\n{{ 'x' * 100 }}\n{% endfor %}")
    assert found.reason == "output longer than 10000 characters (the output limit)"
    assert found.line == 2


def test_other_failures_keep_their_kind_and_line():
    assert (failure("a\n{{ nope }}").kind, failure("a\n{{ nope }}").line) == ("undefined", 2)
    assert failure("{{ ''.__class__ }}").kind == "not allowed"
    divided = failure("a\n\n{{ 1 / 0 }}")
    assert (divided.kind, divided.line, divided.reason) == ("error", 3, "ZeroDivisionError: division by zero")
    with pytest.raises(TemplateFailure) as caught:
        compile_template(LimitedEnvironment(SMALL), "a\n{% for %}")
    assert (caught.value.kind, caught.value.line) == ("syntax", 2)


def test_a_constant_filter_is_not_run_at_compile_time_where_no_limit_applies():
    # jinja2 folds constant expressions while compiling; a folded `center(10**12)` would run then.
    env = LimitedEnvironment(SMALL)
    template = compile_template(env, "{{ 'x'|center(1000000000000) }}")  # must return at once
    with pytest.raises(TemplateFailure, match="centred string"):
        render(template, {})


def test_each_thread_has_its_own_time_budget():
    # Status probes render hook templates in a pool: a hostile render in one thread must be
    # stopped there, and must not use up the budget of a harmless render in another.
    env = LimitedEnvironment(Limits(seconds=0.3), undefined=StrictUndefined)
    hostile = compile_template(env, "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}")
    harmless = compile_template(env, "{{ cluster }}")
    outcomes: dict[str, object] = {}

    def attempt(name, template):
        try:
            outcomes[name] = render(template, {"cluster": "a"})
        except TemplateFailure as exc:
            outcomes[name] = exc.reason

    threads = [threading.Thread(target=attempt, args=("hostile", hostile), daemon=True)]
    threads.append(threading.Thread(target=attempt, args=("harmless", harmless), daemon=True))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)  # a hang guard only
    assert outcomes == {"hostile": "took longer than 0.3 seconds (the time limit)", "harmless": "a"}


def test_a_list_that_holds_itself_prints_as_python_prints_it_and_at_once():
    assert rendered("{% set l = [] %}{% set _ = l.append(l) %}{{ l }} {{ [l, l] }}") == "[[...]] [[[...]], [[...]]]"


@pytest.mark.parametrize(
    "text",
    [
        "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}",  # past Python's own limit, not ours
        "{% set ns = namespace(a=[]) %}{% for _ in range(3000) %}{% set ns.a = [ns.a] %}{% endfor %}{{ ns.a }}",
    ],
)
def test_python_running_out_of_stack_is_a_located_limit_not_a_crash(text):
    found = failure(text, Limits(depth=1_000_000))
    assert found.kind == "limit" and found.line == 1
    assert found.reason == "recursion too deep (a macro or include calling itself, or a value nested thousands deep)"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        # A million references to one list of 100 items: comparing or sorting it walks them all
        # in one C-level step, which no time limit can interrupt.
        ("{% set a = range(100)|list %}{% set b = range(100)|list %}{{ [a] * 1000 == [b] * 1000 }}", "a value compared would be …"),
        ("{% set a = range(100)|list %}{{ [a] in [[a]] * 1000 }}", "a value compared would be …"),
        ("{% set a = range(100)|list %}{{ ([a] * 1000)|sort|first }}", "printed, the value given to |sort would be …"),
        ("{% set a = range(100)|list %}{{ ([a] * 1000)|max }}", "printed, the value given to |max would be …"),
        ("{{ ('x ' * 3000).split()|length }}", "the list made by str.split would be 3001 items long; the limit is 1000"),
        ("{{ ('x' * 3000)|list|length }}", "a list made by |list of a string would be 3000 items long; the limit is 1000"),
    ],
)
def test_a_comparison_or_sort_over_a_huge_value_is_refused_before_it_runs(text, reason):
    found = failure(text)
    assert found.kind == "limit"
    assert found.reason.startswith(reason[:-1]) if reason.endswith("…") else found.reason == reason


def test_comparisons_keep_their_meaning():
    text = "{{ 1 < 2 < 3 }} {{ 3 > 2 > 5 }} {{ 'a' in 'cat' }} {{ 2 not in [1] }} {{ [1, 2] == [1, 2] }} {{ (1,) != (1,) }}"
    assert rendered(text) == "True False True True True False"
    assert rendered("{{ x is defined and x > 1 }}") == "False"


def test_a_tuple_that_doubles_itself_is_refused_before_hashing_it_could_hang():
    # Hashing walks a tuple whole, each time, at C speed but without end: (t, t) sixty times over.
    text = "{% set ns = namespace(t=(1,)) %}{% for _ in range(60) %}{% set ns.t = (ns.t, ns.t) %}{% endfor %}{{ {ns.t: 1} }}"
    found = failure(text)
    assert found.kind == "limit" and found.reason.startswith("a tuple would be ")
    assert rendered("{% for a, b in [(1, 2), (3, 4)] %}{{ a + b }}{% endfor %} {{ (1, 2) + (3,) }} {{ {(1, 2): 3}[(1, 2)] }}") == "37 (1, 2, 3) 3"


def test_a_filter_looping_in_python_over_a_long_text_is_stopped_at_the_time_limit():
    # |urlize walks the words of its text in Python, inside one filter call that the sandbox
    # sees as one step: in the main thread a timer interrupts it (unstopped: about 10 s here).
    before = signal.getsignal(signal.SIGALRM)
    started = time.monotonic()
    found = failure("{{ ('x ' * 3000000)|urlize }}", Limits(seconds=0.2))
    assert found.reason == "took longer than 0.2 seconds (the time limit)" and found.line == 1
    assert time.monotonic() - started < 5  # a hang guard only
    assert signal.getsignal(signal.SIGALRM) is before and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_a_render_that_ends_in_time_leaves_no_timer_behind():
    assert rendered("{{ 1 }}") == "1"
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
