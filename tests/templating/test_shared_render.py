"""Renderings shared by every host (Templar._shared_key): text and whole-string
expressions that call only filters and functions whose result depends on their
arguments render once per key — the text, the values (and types) of every name they
read, and no variable hiding a global they call. Each use of a shared native value
gets its own copy. Anything else renders every time."""

from __future__ import annotations

import pytest

from gfsdeploy.errors import TemplateError
from gfsdeploy.templating import Templar
from gfsdeploy.templating import templar as templar_mod


@pytest.fixture
def templar():
    return Templar(["."])


def _count_evaluations(monkeypatch):
    counts = {"n": 0}
    evaluate = templar_mod._evaluate

    def counting(expression, variables):
        counts["n"] += 1
        return evaluate(expression, variables)

    monkeypatch.setattr(templar_mod, "_evaluate", counting)
    return counts


def test_a_pure_expression_is_evaluated_once_per_value(templar, monkeypatch):
    counts = _count_evaluations(monkeypatch)
    assert templar.render("{{ x | upper }}", {"x": "a", "other": 1}) == "A"
    assert templar.render("{{ x | upper }}", {"x": "a", "other": 2}) == "A"
    assert counts["n"] == 1  # (another variable it does not read: the same key)
    assert templar.render("{{ x | upper }}", {"x": "b"}) == "B"  # the value is part of the key
    assert counts["n"] == 2


def test_the_type_of_a_value_is_part_of_the_key(templar):
    # 1 == True and hash alike: without the type one would be rendered as the other
    assert templar.render("{{ [x] | to_json }}", {"x": 1}) == "[1]"
    assert templar.render("{{ [x] | to_json }}", {"x": True}) == "[true]"
    assert templar.render("v={{ [x] | to_json }}", {"x": 1.0}) == "v=[1.0]"
    assert templar.render("v={{ [x] | to_json }}", {"x": 1}) == "v=[1]"


def test_each_use_of_a_shared_value_is_its_own_copy(templar):
    first = templar.render("{{ range(3) | list }}", {})
    assert first == [0, 1, 2]
    first.append("mine")
    second = templar.render("{{ range(3) | list }}", {})
    assert second == [0, 1, 2] and second is not first
    second.append("mine too")
    assert templar.render("{{ range(3) | list }}", {}) == [0, 1, 2]
    nested = templar.render("{{ {'a': [n]} }}", {"n": 1})
    nested["a"].append(2)
    again = templar.render("{{ {'a': [n]} }}", {"n": 1})
    again["a"].append(3)
    assert templar.render("{{ {'a': [n]} }}", {"n": 1}) == {"a": [1]}


def test_a_variable_named_like_a_global_function_is_what_is_called(templar):
    assert templar.render("{{ range(2) | list }}", {}) == [0, 1]
    with pytest.raises(TemplateError):
        templar.render("{{ range(2) | list }}", {"range": "not callable"})
    assert templar.render("{{ range(2) | list }}", {}) == [0, 1]


def test_only_filters_and_functions_of_their_arguments_alone_are_pure(templar):
    env = templar.env
    pure = ["{{ range(1, 21) | list }}", "{{ x | default('a', true) | replace('a', b) }}", "{{ x | int + 1 }}",
            "a{{ omit }}", "{{ x | ansible.builtin.upper }}"]
    impure = ["{{ x | random }}", "{{ now() }}", "{{ lookup('env', 'HOME') }}", "{{ query('items', x) }}",
              "{{ x | map('upper') | list }}", "{{ x | select('defined') | list }}", "{{ x is defined }}",
              "{{ undef() }}", "{{ lipsum() }}", "{{ x | password_hash('sha512') }}", "{{ range(*x) }}",
              "{% set y = 1 %}{{ y }}", "{{ x.upper() }}"]
    for text in pure:
        assert templar_mod._pure_names(env, text) is not None, text
    for text in impure:
        assert templar_mod._pure_names(env, text) is None, text


def test_what_a_shared_expression_looked_at_is_marked_used(templar):
    class Hosts(dict):
        memo_token = ("hosts", 1)
        used = False

        def __getitem__(self, key):
            self.used = True
            return super().__getitem__(key)

    hosts = Hosts(a={"ip": "10.0.0.1"})
    assert templar.render("{{ hosts['a'].ip | upper }}", {"hosts": hosts}) == "10.0.0.1"
    assert hosts.used
    again = Hosts(a={"ip": "10.0.0.1"})
    assert templar.render("{{ hosts['a'].ip | upper }}", {"hosts": again}) == "10.0.0.1"
    assert again.used  # (shared: not rendered again, still marked as read)


def test_a_failing_expression_is_not_kept(templar):
    with pytest.raises(TemplateError):
        templar.render("{{ x | int // y }}", {"x": "4", "y": 0})
    assert templar.render("{{ x | int // y }}", {"x": "4", "y": 2}) == 2
