"""Sensitive values (``!sensitive``, ``sensitive_vars``) never appear in any
byte gfsdeploy prints or saves: plan, --json, --out, apply -v, errors —
including a failing task whose command line and stderr carry the secret, an
undefined-key error whose message names it, and internal errors."""

from __future__ import annotations

import base64
import os
import subprocess
import sys

import pytest

from trust.helpers import assert_no_secret

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TAGGED = "S3cr3t-Alpha-9f8e7d6c"      # marked with !sensitive
LISTED = "Tok3n-Bravo-1a2b3c4d5e"     # named in sensitive_vars
SECRETS = [TAGGED, LISTED]

PLAYBOOK = """\
- hosts: all
  tasks:
    - name: write the password file
      copy:
        dest: "{{ out }}/password"
        content: "password={{ db_password }}\\n"
    - name: write the token, base64
      copy:
        dest: "{{ out }}/token.b64"
        content: "{{ api_token | b64encode }}"
    - name: a line with the token
      lineinfile:
        path: "{{ out }}/conf"
        line: "token {{ api_token }}"
        create: true
    - name: say it
      debug:
        msg: "the password is {{ db_password }} and the token {{ api_token }}"
    - name: run with it
      command: "echo {{ api_token }}"
      register: echoed
    - name: fail loudly with it
      command: "sh -c 'echo leaked {{ db_password }} {{ api_token }} >&2; exit 3'"
"""

KEY_ERROR_PLAYBOOK = """\
- hosts: all
  tasks:
    - name: look it up
      debug:
        msg: "{{ {'a': 1}[db_password] }}"
"""


def inventory(path, out, extra: str = "") -> str:
    with open(path, "w") as handle:
        handle.write(f"""all:
  vars:
    ansible_connection: local
    gfsdeploy_lock_dir: {out}.lock
    out: {out}
    sensitive_vars: [api_token]
    api_token: {LISTED}
  hosts:
    node1:
      db_password: !sensitive "{TAGGED}"{extra}
""")
    return str(path)


def gfs(*args, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gfsdeploy", *args], capture_output=True,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": ROOT}, stdin=subprocess.DEVNULL)


@pytest.fixture
def setup(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    inv = inventory(tmp_path / "inv.yaml", out)
    pb = tmp_path / "pb.yaml"
    pb.write_text(PLAYBOOK)
    return tmp_path, out, inv, str(pb)


def test_no_secret_in_plan_json_saved_plan_apply_and_errors(setup):
    tmp_path, out, inv, pb = setup
    saved = tmp_path / "plan.json"
    runs = {
        "plan": gfs("plan", inv, "-p", pb, "-v"),
        "plan --json": gfs("plan", inv, "-p", pb, "--json"),
        "plan --out": gfs("plan", inv, "-p", pb, "--out", str(saved), "--tags", "never-matches,untagged"),
        "apply -v": gfs("apply", inv, "-p", pb, "-v"),
    }
    runs["apply --json (again)"] = gfs("apply", inv, "-p", pb, "--json")
    runs["apply -vv"] = gfs("apply", inv, "-p", pb, "-vv")
    texts = {}
    for label, proc in runs.items():
        texts[label + " stdout"] = proc.stdout
        texts[label + " stderr"] = proc.stderr
    if saved.exists():
        texts["saved plan"] = saved.read_bytes()
    assert_no_secret(texts, SECRETS)
    # not vacuous: the secrets reached the host, the failure was reported, the mask shown
    assert (out / "password").read_text() == f"password={TAGGED}\n"
    assert base64.b64decode((out / "token.b64").read_text()).decode() == LISTED
    apply = runs["apply -v"]
    assert apply.returncode == 1
    assert b"fail loudly with it" in apply.stdout + apply.stderr
    assert b"(sensitive)" in apply.stdout
    assert b"exit" in apply.stdout or b"return code 3" in apply.stdout
    assert b"(sensitive)" in runs["plan"].stdout


def test_saved_plan_file_has_no_secret(setup):
    tmp_path, out, inv, pb = setup
    pb_ok = tmp_path / "ok.yaml"
    pb_ok.write_text(PLAYBOOK.split("    - name: fail loudly")[0])
    saved = tmp_path / "plan.json"
    proc = gfs("plan", inv, "-p", str(pb_ok), "--out", str(saved))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert_no_secret({"stdout": proc.stdout, "stderr": proc.stderr, "plan.json": saved.read_bytes()}, SECRETS)


def test_error_message_naming_the_secret_is_redacted(setup):
    tmp_path, out, inv, pb = setup
    bad = tmp_path / "bad.yaml"
    bad.write_text(KEY_ERROR_PLAYBOOK)
    for args in (("plan", inv, "-p", str(bad)), ("apply", inv, "-p", str(bad), "--json", "-v")):
        proc = gfs(*args)
        assert proc.returncode == 1
        assert b"look it up" in proc.stdout + proc.stderr
        assert_no_secret({"stdout": proc.stdout, "stderr": proc.stderr}, SECRETS)


def test_internal_errors_are_redacted(setup, monkeypatch, capsys):
    """A bug (any exception) inside a module or the CLI: the message and the -v traceback are redacted."""
    from gfsdeploy import cli, modules, secrets

    tmp_path, out, inv, pb = setup
    debug = modules.get("debug")

    def boom(self, args, state, ctx):
        raise RuntimeError(f"module blew up holding {args['msg']}")

    monkeypatch.setattr(type(debug), "report", boom)  # what a read-only module runs
    try:
        code = cli.main(["apply", inv, "-p", pb, "-v"])
        captured = capsys.readouterr()
        assert code == 1
        assert "internal error: RuntimeError" in captured.out + captured.err
        assert_no_secret([captured.out, captured.err], SECRETS)

        def crash(args):
            raise ValueError(f"cli crashed near {TAGGED} / {LISTED}")

        monkeypatch.setattr(cli, "cmd_plan", crash)
        code = cli.main(["plan", inv, "-p", pb, "-v"])
        captured = capsys.readouterr()
        assert code == 1 and "internal error: ValueError" in captured.err and "Traceback" in captured.err
        assert_no_secret([captured.out, captured.err], SECRETS)
    finally:
        secrets.reset()


def test_over_ssh_apply_with_failure(sshd, tmp_path):
    """The same over a real SSH connection (the sshd fixture)."""
    out = tmp_path / "out"
    out.mkdir()
    inv = sshd.inventory(tmp_path / "inv.yaml", f', out: {out}, sensitive_vars: [api_token], '
                                                f'api_token: {LISTED}, db_password: !sensitive "{TAGGED}"')
    pb = tmp_path / "pb.yaml"
    pb.write_text(PLAYBOOK)
    runs = [gfs("apply", inv, "-p", str(pb), "-v"), gfs("plan", inv, "-p", str(pb), "--json")]
    assert runs[0].returncode == 1 and (out / "password").read_text() == f"password={TAGGED}\n"
    assert_no_secret([r.stdout for r in runs] + [r.stderr for r in runs], SECRETS)


def test_helper_finds_base64_forms():
    with pytest.raises(AssertionError):
        assert_no_secret(["x" + base64.b64encode(b"prefix:" + TAGGED.encode()).decode()], [TAGGED])
    with pytest.raises(AssertionError):
        assert_no_secret([base64.urlsafe_b64encode(LISTED.encode()).rstrip(b"=")], [LISTED])
    assert_no_secret(["(sensitive)"], [TAGGED])


def test_an_unknown_value_registered_as_secret_masks_only_what_is_known():
    """A Secret whose data is only known after apply must not turn every
    "(known after apply)" of the plan into "(sensitive)"."""
    from gfsdeploy import secrets
    from gfsdeploy.templating.templar import UNKNOWN_MARK

    secrets.reset()
    try:
        secrets.register(UNKNOWN_MARK)
        secrets.register(f"{UNKNOWN_MARK}pa55w0rd")
        assert secrets.redact(f"resturl http://{UNKNOWN_MARK}:8080") == f"resturl http://{UNKNOWN_MARK}:8080"
        assert secrets.redact("the key pa55w0rd") == "the key (sensitive)"
    finally:
        secrets.reset()
