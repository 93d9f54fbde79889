"""`gfsdeploy vault` writes what ansible-vault reads, and reads what it writes."""

import os
import subprocess
import sys

from tests.vault.test_vault import ansible_vault


def gfs(*args, cwd, input=None):
    return subprocess.run([sys.executable, "-m", "gfsdeploy", "vault", *args], capture_output=True, text=True,
                          cwd=cwd, input=input, timeout=120, check=False)


def test_encrypt_view_decrypt_rekey_both_ways(tmp_path):
    (tmp_path / "pw").write_text("first-pw\n")
    (tmp_path / "pw2").write_text("second-pw\n")
    secret = tmp_path / "secret.yml"
    secret.write_text("heketi_admin_key: Adm-77c1e0\n")
    secret.chmod(0o640)
    assert gfs("encrypt", "secret.yml", "--vault-password-file", "pw", cwd=tmp_path).returncode == 0
    assert secret.read_text().startswith("$ANSIBLE_VAULT;1.1;AES256") and (secret.stat().st_mode & 0o777) == 0o640
    assert ansible_vault("view", "--vault-password-file", str(tmp_path / "pw"), str(secret)) == \
        "heketi_admin_key: Adm-77c1e0\n"
    again = gfs("encrypt", "secret.yml", "--vault-password-file", "pw", cwd=tmp_path)
    assert again.returncode == 1 and "already vault-encrypted" in again.stdout + again.stderr
    assert gfs("rekey", "secret.yml", "--vault-password-file", "pw", "--new-vault-password-file", "pw2",
               "--new-vault-id", "prod", cwd=tmp_path).returncode == 0
    assert ansible_vault("view", "--vault-id", f"prod@{tmp_path / 'pw2'}", str(secret)) == \
        "heketi_admin_key: Adm-77c1e0\n"
    theirs = tmp_path / "theirs.yml"
    theirs.write_text("x: 1\n")
    ansible_vault("encrypt", "--vault-id", f"lab@{tmp_path / 'pw'}", str(theirs))
    view = gfs("view", "theirs.yml", "--vault-id", "lab@pw", cwd=tmp_path)
    assert view.returncode == 0 and view.stdout == "x: 1\n"
    wrong = gfs("decrypt", "theirs.yml", "--vault-password-file", "pw2", cwd=tmp_path)
    assert wrong.returncode == 1 and "decrypts this" in wrong.stdout + wrong.stderr
    assert theirs.read_text().startswith("$ANSIBLE_VAULT")  # untouched
    assert gfs("decrypt", "theirs.yml", "--vault-password-file", "pw", cwd=tmp_path).returncode == 0
    assert theirs.read_text() == "x: 1\n"


def test_encrypt_string_is_an_inline_vault_value(tmp_path):
    (tmp_path / "pw").write_text("first-pw\n")
    out = gfs("encrypt-string", "--name", "token", "--vault-id", "lab@pw", cwd=tmp_path, input="Tok-5a5a\n")
    assert out.returncode == 0 and out.stdout.startswith("token: !vault |\n          $ANSIBLE_VAULT;1.2;AES256;lab")
    block = "\n".join(line.strip() for line in out.stdout.splitlines()[1:]) + "\n"
    (tmp_path / "block").write_text(block)
    assert ansible_vault("view", "--vault-id", f"lab@{tmp_path / 'pw'}", str(tmp_path / "block")) == "Tok-5a5a\n"
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".gfsvault-")]
