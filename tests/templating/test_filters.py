"""Table tests for what the differential suite cannot cover (collections' filters,
password hashing vectors, errors), and the Templar's error behaviour."""

import pytest

from gfsdeploy.errors import TemplateError
from gfsdeploy.templating import OMIT, Templar, check_template, known_filters, known_lookups, known_tests
from gfsdeploy.templating.passwords import password_hash, sha_crypt
from gfsdeploy.yamlload import loads

DATA = {"clusters": [{"name": "a", "nodes": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}]},
                     {"name": "b", "nodes": [{"ip": "10.0.1.1"}]}],
        "pods": {"items": [{"metadata": {"name": "p1"}, "status": {"phase": "Running"}},
                           {"metadata": {"name": "p2"}, "status": {"phase": "Pending"}}]}}


def render(text, **variables):
    return Templar(["."]).render(text, {**DATA, **variables})


@pytest.mark.parametrize("expression,expected", [
    ("{{ clusters | json_query('[].name') }}", ["a", "b"]),
    ("{{ clusters | json_query('[].nodes[].ip') }}", ["10.0.0.1", "10.0.0.2", "10.0.1.1"]),
    ("{{ clusters | json_query(\"[?name=='b'].nodes[0].ip | [0]\") }}", "10.0.1.1"),
    ("{{ pods | json_query(\"items[?status.phase=='Running'].metadata.name\") }}", ["p1"]),
    ("{{ pods | community.general.json_query('length(items)') }}", 2),
    ("{{ clusters | json_query('nothing') }}", None),
])
def test_json_query(expression, expected):
    assert render(expression) == expected


@pytest.mark.parametrize("expression,expected", [
    ("{{ '192.168.1.5/24' | ipaddr }}", "192.168.1.5/24"),
    ("{{ '192.168.1.5/24' | ipaddr('address') }}", "192.168.1.5"),
    ("{{ '192.168.1.5/24' | ipaddr('network') }}", "192.168.1.0"),
    ("{{ '192.168.1.5/24' | ipaddr('netmask') }}", "255.255.255.0"),
    ("{{ '192.168.1.5/24' | ipaddr('prefix') }}", 24),
    ("{{ '192.168.1.5/24' | ipaddr('broadcast') }}", "192.168.1.255"),
    ("{{ '192.168.1.5/24' | ipaddr('subnet') }}", "192.168.1.0/24"),
    ("{{ '192.168.1.5/24' | ipaddr('host/prefix') }}", "192.168.1.5/24"),
    ("{{ '192.168.1.0/24' | ipaddr('1') }}", "192.168.1.1/24"),
    ("{{ '192.168.1.0/24' | ipaddr('first_usable') }}", "192.168.1.1"),
    ("{{ '192.168.1.0/24' | ipaddr('last_usable') }}", "192.168.1.254"),
    ("{{ '192.168.1.0/24' | ipaddr('size') }}", 256),
    ("{{ 'nonsense' | ipaddr }}", False),
    ("{{ ['10.0.0.1', 'x', 'fe80::1'] | ipaddr }}", ["10.0.0.1", "fe80::1"]),
    ("{{ ['10.0.0.1', 'fe80::1'] | ipv4 }}", ["10.0.0.1"]),
    ("{{ ['10.0.0.1', 'fe80::1'] | ipv6 }}", ["fe80::1"]),
    ("{{ '10.0.0.1' | ipaddr('private') }}", "10.0.0.1"),
    ("{{ '8.8.8.8' | ipaddr('private') }}", None),
    ("{{ '8.8.8.8' | ipaddr('public') }}", "8.8.8.8"),
    ("{{ 'fe80::1' | ipwrap }}", "[fe80::1]"),
    ("{{ '10.0.0.1' | ipwrap }}", "10.0.0.1"),
    ("{{ '10.0.0.1' | ansible.utils.ipmath(5) }}", "10.0.0.6"),
    ("{{ '10.0.0.0/24' | nthhost(10) }}", "10.0.0.10"),
    ("{{ '10.0.0.0/24' | network_in_usable('10.0.0.7') }}", True),
    ("{{ '10.0.0.0/24' | network_in_network('10.0.0.0/25') }}", True),
    ("{{ '10.0.0.1' is ansible.utils.ipaddr }}", True),
    ("{{ '10.0.0.1' | ansible.netcommon.ipaddr('revdns') }}", "1.0.0.10.in-addr.arpa."),
])
def test_ip_filters(expression, expected):
    assert render(expression) == expected


def test_ipaddr_needs_a_network_for_usable_queries():
    with pytest.raises(TemplateError, match="Not a network address"):
        render("{{ '10.0.0.1' | ipaddr('first_usable') }}")


def test_ipaddr_unknown_query_is_an_error():
    with pytest.raises(TemplateError, match="unknown query 'bogus'"):
        render("{{ '10.0.0.1' | ipaddr('bogus') }}")


@pytest.mark.parametrize("password,setting,expected", [
    # the published SHA-crypt test vectors
    ("Hello world!", ("saltstring", None, 256), "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5"),
    ("Hello world!", ("saltstring", None, 512),
     "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"),
    ("Hello world!", ("saltstringsaltstring", 10000, 256),
     "$5$rounds=10000$saltstringsaltst$3xv.VbSHBb41AL9AvLeujZkZRBAwqFMz2.opqey6IcA"),
    ("Hello world!", ("saltstringsaltstring", 10000, 512),
     "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v."),
    ("we have a short salt string but not a short password", ("short", 77777, 512),
     "$6$rounds=77777$short$WuQyW2YR.hBNpjjRhpYD/ifIw05xdfeEyQoMxIXbkvr0gge1a1x3yRULJ5CCaUeOxFmtlcGZelFl5CxtgfiAc0"),
])
def test_sha_crypt_vectors(password, setting, expected):
    salt, rounds, bits = setting
    assert sha_crypt(password.encode(), salt, rounds, bits) == expected


def test_password_hash_defaults_and_random_salt():
    # Ansible's defaults: 656000 rounds for sha512 (written out), random 16-character salt
    a = password_hash("pw", "sha512", rounds=5000)
    b = password_hash("pw", "sha512", rounds=5000)
    assert a.startswith("$6$") and a != b
    assert render("{{ 'secret' | password_hash('sha512', 'mysalt') }}") == (
        "$6$rounds=656000$mysalt$cDA0t8lm/qt.LT6DzpoHxJ.NwTpx.WTkOPwhseSva8pRixDSH2./ffedCjAMbTX1Uo1QNT7jJPJ6FIzU2i59K/")
    bcrypted = render("{{ 'secret' | password_hash('bcrypt', 'abcdefghijklmnopqrstuu', rounds=4) }}")
    import bcrypt

    assert bcrypt.checkpw(b"secret", bcrypted.encode())
    with pytest.raises(TemplateError, match="unsupported hash type 'md4'"):
        render("{{ 'x' | password_hash('md4') }}")


# -- hard errors: never the raw text -----------------------------------------------------
PLAY_VARS = """\
good: "{{ [1, 2] | json_query('[0]') }}"
typo: "{{ [1, 2] | json_qurey('[0]') }}"
undefined_inside: "{{ nobody_defines_this }}"
uses_typo: "x={{ typo }}"
count: "{{ typo | int }}"
syntax: "{{ oops"
"""


@pytest.fixture()
def play_vars():
    data = loads(PLAY_VARS, "site.yml")
    return Templar(["."]).resolve(dict(data))


@pytest.mark.parametrize("template,message,line", [
    ("value={{ typo }}", "unknown filter 'json_qurey'", 2),
    ("{{ typo }}", "unknown filter 'json_qurey'", 2),
    ("{{ uses_typo }}", "unknown filter 'json_qurey'", 2),
    ("{{ count | int > 0 }}", "unknown filter 'json_qurey'", 2),
    ("{{ undefined_inside }}", "'nobody_defines_this' is undefined", 9),
    ("{{ syntax }}", "Jinja syntax error", 6),
])
def test_broken_variables_fail_where_used(play_vars, template, message, line):
    templar = Templar(["."])
    with pytest.raises(TemplateError) as caught:
        templar.render(template, play_vars, where={"file": "site.yml", "line": 9, "task": "show"})
    error = caught.value
    assert message in str(error)
    assert "{{" not in error.message.replace("{{ }}", "")  # never the raw template text
    assert (error.file, error.line) == ("site.yml", line)
    assert error.task == "show"


def test_unknown_filter_suggests_the_closest(play_vars):
    with pytest.raises(TemplateError) as caught:
        Templar(["."]).render("{{ typo }}", play_vars)
    assert "did you mean 'json_query'" in caught.value.fix


def test_good_variable_and_unused_broken_ones(play_vars):
    assert play_vars["good"] == 1
    assert Templar(["."]).render("{{ good + 1 }}", play_vars) == 2


def test_broken_variable_is_undefined_for_default_and_is_defined(play_vars):
    t = Templar(["."])
    assert t.render("{{ undefined_inside | default('d') }}", play_vars) == "d"
    assert t.render("{{ undefined_inside is defined }}", play_vars) is False
    with pytest.raises(TemplateError, match="unknown filter"):
        t.render("{{ typo is defined }}", play_vars)  # not an undefined: the error stands


def test_template_file_error_names_the_file_line(tmp_path):
    path = tmp_path / "t.j2"
    path.write_text("line one\n{{ fine }}\n{{ missing_var }}\n")
    with pytest.raises(TemplateError) as caught:
        Templar([str(tmp_path)]).render_file(str(path), {"fine": 1}, where={"file": "pb.yml", "line": 3, "task": "t"})
    assert (caught.value.file, caught.value.line) == (str(path), 3)
    assert "missing_var" in caught.value.message


def test_template_files_get_ansible_managed(tmp_path):
    path = tmp_path / "motd.j2"
    path.write_text("# {{ ansible_managed }} ({{ template_basename }})\n")
    assert Templar([str(tmp_path)]).render_file(str(path), {}) == "# Ansible managed (motd.j2)\n"
    assert Templar([str(tmp_path)]).render_file(str(path), {"ansible_managed": "mine"}) == "# mine (motd.j2)\n"


def test_multiline_block_scalar_error_line():
    data = loads("a: 1\ncontent: |\n  first\n  second {{ nope }}\n", "vars.yml")
    with pytest.raises(TemplateError) as caught:
        Templar(["."]).render(data["content"], {}, where={"file": "pb.yml", "line": 1, "task": "t"})
    assert (caught.value.file, caught.value.line) == ("vars.yml", 4)


def test_variable_cycle_is_an_error_not_a_hang():
    t = Templar(["."])
    variables = t.resolve({"a": "{{ b }}", "b": "{{ a }}"})
    with pytest.raises(TemplateError, match="refers to itself"):
        t.render("{{ a }}", variables)


def test_omit_drops_arguments_and_items():
    t = Templar(["."])
    assert t.render({"path": "/x", "mode": "{{ m | default(omit) }}"}, {}) == {"path": "/x"}
    assert t.render(["a", "{{ omit }}", "b"], {}) == ["a", "b"]


def test_conditions_keep_jinja_escapes_but_yaml_strings_do_not():
    t = Templar(["."])
    assert t.evaluate(r"'a\nb' | length == 3", {}) is True
    assert t.render(r"{{ 'a\nb' | length }}", {}) == 4


@pytest.mark.parametrize("value,expected", [("false", False), ("False", False), ("no", False), ("", False),
                                            ("yes", True), ("True", True), (1, True), (0, False)])
def test_evaluate_judges_strings_as_ansible(value, expected):
    assert bool(Templar(["."]).evaluate("{{ v }}", {"v": value})) is expected


def test_lookup_fqcn_and_unknown_and_refused(monkeypatch):
    monkeypatch.setenv("GFS_TEST_ENV", "v1")
    assert render("{{ lookup('ansible.builtin.env', 'GFS_TEST_ENV') }}") == "v1"
    with pytest.raises(TemplateError, match="unknown lookup 'evn'; did you mean 'env'"):
        render("{{ lookup('evn', 'X') }}")
    with pytest.raises(TemplateError, match="lookup 'url' is not supported"):
        render("{{ lookup('url', 'https://example.com') }}")


# -- static analysis (gfsdeploy check) ------------------------------------------------
def test_check_template_reports_without_rendering():
    result = check_template("{{ a | json_qurey('x') }} {{ b is sucess }} {{ lookup('fiel', 'x') }} {% for i in c %}{{ i }}{% endfor %}")
    assert result.unknown_filters == {"json_qurey"}
    assert result.unknown_tests == {"sucess"}
    assert result.unknown_lookups == {"fiel"}
    assert result.undeclared == {"a", "b", "c"}
    assert not result.ok
    bad = check_template("line 1\n{{ oops")
    assert bad.syntax_error and bad.line == 2
    assert check_template("x | default(omit) is defined", expression=True).ok
    assert check_template("{{ x | ansible.builtin.to_json | community.general.json_query('a') }}").ok


def test_known_names():
    assert {"json_query", "ternary", "combine", "ansible.builtin.combine", "to_nice_yaml", "ipaddr"} <= known_filters()
    assert {"succeeded", "version", "ansible.builtin.version", "defined"} <= known_tests()
    assert {"env", "file", "template", "pipe", "vars", "first_found", "ansible.builtin.file"} <= known_lookups()
    assert OMIT not in known_filters()


# -- plan: values known only after apply ---------------------------------------------
@pytest.mark.parametrize("template", [
    "{{ r.stdout | from_json }}", "{{ r | to_json }}", "{{ {'a': r.rc} | to_nice_yaml }}", "{{ r.stdout | int + 1 }}",
    "{{ 'x' if r is changed else 'y' }}", "{{ r.stdout_lines | map('upper') | list }}",
])
def test_filters_and_tests_on_unknown_values_are_unknown(template):
    from gfsdeploy.templating import Unknown, is_unknown

    t = Templar(["."])
    assert is_unknown(t.render(template, {"r": Unknown()}))
    assert is_unknown(t.render("prefix " + template, {"r": Unknown()}))
    assert t.render("{{ r | default('x') is defined }}", {"r": Unknown()}) is True


def test_legacy_tests_as_filters_and_collection_aliases():
    t = Templar(["."])
    assert t.render("{{ '1.7.3' | version_compare('1.8', '<') }}", {}) is True
    assert t.render("{{ r | failed }} {{ r | changed }}", {"r": {"failed": True, "changed": False}}) == "True False"
    assert t.render("{{ [{'a': 1}] | ovirt.ovirt.json_query('[0].a') }}", {}) == 1


# -- the password lookup ---------------------------------------------------------------
def test_password_lookup_keeps_reads_and_never_writes_in_plan(tmp_path):
    import json
    import os
    import subprocess
    import sys

    from gfsdeploy import secrets
    from gfsdeploy.templating import is_unknown

    t = Templar([str(tmp_path)])
    variables = {"playbook_dir": str(tmp_path), "ansible_check_mode": True}
    planned = t.render("{{ lookup('password', 'creds/token length=32 chars=hexdigits') }}", variables)
    assert is_unknown(planned) and not (tmp_path / "creds").exists()  # plan creates nothing
    variables["ansible_check_mode"] = False
    token = t.render("{{ lookup('password', 'creds/token length=32 chars=hexdigits') }}", variables)
    assert len(token) == 32 and set(token) <= set("0123456789abcdefABCDEF")
    path = tmp_path / "creds" / "token"
    assert path.read_text() == token + "\n" and (path.stat().st_mode & 0o777) == 0o600
    assert t.render("{{ lookup('password', 'creds/token length=32') }}", variables) == token  # kept
    assert secrets.redact(f"x {token} y") == "x (sensitive) y"
    fresh = {t.render("{{ lookup('password', '/dev/null', length=12, chars=['digits']) }}", variables)
             for _ in range(3)}
    assert len(fresh) > 1 and all(len(p) == 12 and p.isdigit() for p in fresh)
    # a file ansible-core's password lookup created reads the same in gfsdeploy
    request = {"vars": {}, "basedir": str(tmp_path),
               "expressions": ["{{ lookup('password', '" + str(tmp_path / "from_ansible") + "') }}"]}
    proc = subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__), "ansible_render.py")],
                          input=json.dumps(request), capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    theirs = json.loads(proc.stdout)[0]["value"]
    assert len(theirs) == 20
    assert t.render("{{ lookup('password', 'from_ansible') }}", variables) == theirs
