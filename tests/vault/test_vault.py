"""Ansible Vault: what ansible-vault encrypts, gfsdeploy decrypts (and the reverse);
secrets from a vault never appear in plan/apply/JSON output."""

import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap

import pytest

from gfsdeploy import secrets, vault
from gfsdeploy.errors import GfsError
from gfsdeploy.inventory import load_inventory
from gfsdeploy.templating import Templar
from gfsdeploy.varsfiles import load_vars_file

SECRET = "hk-admin-Key-7Qz9"


def ansible_vault(*args, cwd=None, input=None):
    exe = shutil.which("ansible-vault")
    assert exe, "ansible-core is a test dependency (pip install ansible-core)"
    proc = subprocess.run([exe, *args], capture_output=True, text=True, cwd=cwd, input=input, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture(autouse=True)
def fresh_run():
    secrets.reset()
    yield
    vault.use(vault.Keyring())
    secrets.reset()


@pytest.fixture
def passwords(tmp_path):
    first = tmp_path / "pw-default"
    first.write_text("correct horse\n")
    lab = tmp_path / "pw-lab"
    lab.write_text("battery staple")
    return str(first), str(lab)


def keyring(*pairs):
    ring = vault.Keyring()
    for label, password in pairs:
        ring.add(label, password)
    return ring


def test_ansible_vault_file_is_decrypted_in_memory_and_registered(tmp_path, passwords):
    path = tmp_path / "secrets.yml"
    path.write_text(f"heketi_admin_key: {SECRET}\nport: 8080\n")
    ansible_vault("encrypt", "--vault-password-file", passwords[0], str(path))
    assert SECRET not in path.read_text() and path.read_text().startswith("$ANSIBLE_VAULT;1.1;AES256")
    vault.use(vault.keyring_from(password_files=[passwords[0]]))
    assert load_vars_file(str(path)) == {"heketi_admin_key": SECRET, "port": 8080}
    assert secrets.redact(f"key={SECRET}") == "key=(sensitive)"
    assert SECRET not in path.read_text()  # decrypted in memory only


def test_inline_vault_values_with_vault_ids(tmp_path, passwords):
    one = ansible_vault("encrypt_string", "--vault-id", f"lab@{passwords[1]}", SECRET, "--name", "a")
    two = ansible_vault("encrypt_string", "--vault-password-file", passwords[0], "plain-two", "--name", "b")
    assert "$ANSIBLE_VAULT;1.2;AES256;lab" in one
    path = tmp_path / "vars.yml"
    path.write_text(one + two + "c: 3\n")
    vault.use(vault.keyring_from(vault_ids=[f"lab@{passwords[1]}", passwords[0]]))
    data = load_vars_file(str(path))
    assert data == {"a": SECRET, "b": "plain-two", "c": 3}
    assert Templar(["."]).render("{{ a is vault_encrypted }} {{ c is vault_encrypted }}", data) == "True False"
    assert secrets.redact(SECRET) == "(sensitive)"


def test_gfsdeploy_encrypts_what_ansible_vault_decrypts(tmp_path, passwords):
    path = tmp_path / "mine.yml"
    path.write_text(vault.encrypt(f"x: {SECRET}\n", "battery staple", vault_id="lab"))
    out = ansible_vault("view", "--vault-id", f"lab@{passwords[1]}", str(path))
    assert out.strip() == f"x: {SECRET}"
    inline = vault.encrypt("s3cr3t-value", "correct horse")
    filter_out = Templar(["."]).render("{{ v | unvault('correct horse') }}", {"v": inline})
    assert filter_out == "s3cr3t-value"


def test_missing_or_wrong_password_errors_name_the_place(tmp_path, passwords):
    encrypted = ansible_vault("encrypt_string", "--vault-id", f"lab@{passwords[1]}", SECRET, "--name", "key")
    path = tmp_path / "vars.yml"
    path.write_text("first: 1\n" + encrypted)
    vault.use(vault.Keyring())
    data = load_vars_file(str(path))  # loading is fine: the value is only needed when used
    assert data["first"] == 1
    with pytest.raises(GfsError) as caught:
        Templar(["."]).render("{{ key }}", data, where={"file": "pb.yml", "line": 4, "task": "t"})
    assert (caught.value.file, caught.value.line) == (str(path), 2)
    assert "no vault password was given" in caught.value.message and "--vault-password-file" in caught.value.fix
    vault.use(keyring(("default", "wrong")))
    data = load_vars_file(str(path))
    with pytest.raises(GfsError, match="none of the vault passwords given .default. decrypts this .encrypted for "
                                       "vault id 'lab'"):
        Templar(["."]).render("x{{ key }}", data)
    whole = tmp_path / "whole.yml"
    whole.write_text("y: 1\n")
    ansible_vault("encrypt", "--vault-password-file", passwords[0], str(whole))
    with pytest.raises(GfsError) as caught:
        load_vars_file(str(whole))
    assert caught.value.file == str(whole) and "decrypts this" in caught.value.message


def test_password_sources_script_and_client_script(tmp_path):
    script = tmp_path / "get-pass.sh"
    script.write_text("#!/bin/sh\necho 'from-script'\n")
    client = tmp_path / "keyring-client.py"
    client.write_text(f"#!{sys.executable}\nimport sys\nprint('client-' + sys.argv[sys.argv.index('--vault-id') + 1])\n")
    for f in (script, client):
        f.chmod(f.stat().st_mode | stat.S_IXUSR)
    ring = vault.keyring_from(vault_ids=[f"ops@{client}"], password_files=[str(script)])
    assert ring.entries == [("ops", b"client-ops"), ("default", b"from-script")]
    asked = vault.keyring_from(ask=True, prompt=lambda text: "typed")
    assert asked.entries == [("default", b"typed")]
    env = vault.keyring_from(environ={"ANSIBLE_VAULT_PASSWORD_FILE": str(script)})
    assert env.entries == [("default", b"from-script")]
    with pytest.raises(GfsError, match="vault password file .*No such file"):
        vault.keyring_from(password_files=[str(tmp_path / "nope")])


def test_format_vectors_round_trip():
    text = vault.encrypt("data\n", "pw", salt=b"\x01" * 32)
    assert text == vault.encrypt("data\n", "pw", salt=b"\x01" * 32)  # deterministic for a given salt
    assert keyring(("default", "pw")).decrypt(text) == b"data\n"
    damaged = text.replace(text.splitlines()[2], "zz" * 40)
    with pytest.raises(GfsError, match="damaged"):
        keyring(("default", "pw")).decrypt(damaged)


def gfs(*args, cwd):
    return subprocess.run([sys.executable, "-m", "gfsdeploy", *args], capture_output=True, text=True, timeout=180,
                          cwd=cwd, check=False)


def test_vault_secret_never_in_plan_apply_or_json(tmp_path, passwords):
    """End to end through the CLI: a vaulted group_vars file and an inline !vault in the
    inventory; the secret lands in the file on the host, and nowhere in what gfsdeploy prints."""
    inline = ansible_vault("encrypt_string", "--vault-id", f"lab@{passwords[1]}", SECRET + "-inline",
                           "--name", "inline_secret")
    (tmp_path / "inventory").mkdir()
    (tmp_path / "inventory" / "hosts.ini").write_text(
        f"[local]\nnode_a ansible_connection=local gfsdeploy_lock_dir={tmp_path}/lock root={tmp_path}\n")
    group_vars = tmp_path / "inventory" / "group_vars"
    group_vars.mkdir()
    (group_vars / "local.yml").write_text(f"admin_key: {SECRET}\n")
    ansible_vault("encrypt", "--vault-password-file", passwords[0], str(group_vars / "local.yml"))
    (group_vars / "all.yml").write_text(inline)
    playbook = tmp_path / "site.yml"
    playbook.write_text(textwrap.dedent("""\
        - hosts: local
          tasks:
            - name: write the key
              copy:
                dest: "{{ root }}/key.txt"
                content: "{{ admin_key }}/{{ inline_secret }}\\n"
            - name: show it
              debug:
                msg: "the key is {{ admin_key }}"
        """))
    args = [str(tmp_path / "inventory"), "-p", str(playbook), "--vault-password-file", passwords[0],
            "--vault-id", f"lab@{passwords[1]}"]
    outputs = []
    for command in (["plan", *args], ["plan", "--json", *args], ["apply", "-v", *args], ["apply", "--json", *args]):
        proc = gfs(*command, cwd=str(tmp_path))
        assert proc.returncode in (0, 2), proc.stdout + proc.stderr
        outputs.append(proc.stdout + proc.stderr)
    assert (tmp_path / "key.txt").read_text() == f"{SECRET}/{SECRET}-inline\n"
    for out in outputs:
        assert SECRET not in out
    assert "(sensitive)" in outputs[0]
    json.loads(outputs[1])  # still valid JSON
    # without the passwords: a clear error naming the encrypted file, no secret, nothing changed
    (tmp_path / "key.txt").unlink()
    proc = gfs("apply", str(tmp_path / "inventory"), "-p", str(playbook), cwd=str(tmp_path))
    assert proc.returncode == 1
    assert "group_vars/local.yml" in proc.stdout + proc.stderr and "--vault-password-file" in proc.stdout + proc.stderr
    assert not (tmp_path / "key.txt").exists()


def test_vaulted_template_and_file_lookup(tmp_path, passwords):
    (tmp_path / "files").mkdir()
    (tmp_path / "templates").mkdir()
    key = tmp_path / "files" / "tls.key"
    key.write_text("-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END KEY-----\n")
    tpl = tmp_path / "templates" / "conf.j2"
    tpl.write_text("user={{ user }} token=Tok-3f9a2b7c\n")
    for path in (key, tpl):
        ansible_vault("encrypt", "--vault-password-file", passwords[0], str(path))
    vault.use(vault.keyring_from(password_files=[passwords[0]]))
    t = Templar([str(tmp_path / "templates"), str(tmp_path), str(tmp_path / "files")])
    assert t.render_file(str(tpl), {"user": "bob"}) == "user=bob token=Tok-3f9a2b7c\n"
    text = t.render("{{ lookup('file', 'tls.key') }}", {})
    assert text.startswith("-----BEGIN KEY-----") and "MIIEvQ" in text
    assert "MIIEvQ" not in secrets.redact(f"the key: {text}")
    assert vault.read_file(str(key)).decode().splitlines()[1] == "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"
