"""The same INI inventory (group_vars/ and host_vars/ beside it and beside the
playbook, host ranges, names with `_`, a vaulted group_vars file) run by
ansible-playbook and by gfsdeploy apply on the controller itself: the files each
writes must be the same. What each variable ends as names the layer that won."""

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

LAYERS = ["inv-file-all", "inv-file-group", "inv-group_vars-all", "pb-group_vars-all", "inv-group_vars-group",
          "pb-group_vars-group", "inv-file-host", "inv-host_vars", "pb-host_vars", "play-vars", "extra"]


def values(level: str) -> dict:
    n = LAYERS.index(level)
    return {f"v{k}": level for k in range(n, len(LAYERS))}


def yaml_text(level: str) -> str:
    return "".join(f"{k}: {v}\n" for k, v in values(level).items())


def write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_inventory_layers_and_vault_through_a_playbook(tmp_path):
    src = tmp_path / "src"
    password = tmp_path / "vault-pass"
    password.write_text("s3cret-pw\n")
    host_vars = " ".join(f"{k}={v}" for k, v in values("inv-file-host").items())
    write(src, "inventory/hosts.ini", textwrap.dedent(f"""\
        [storage]
        node_[1:2] ansible_connection=local ansible_python_interpreter={sys.executable}
        node_3 ansible_connection=local ansible_python_interpreter={sys.executable} {host_vars}
        [all:vars]
        """) + "".join(f"{k}={v}\n" for k, v in values("inv-file-all").items())
        + "[storage:vars]\n" + "".join(f"{k}={v}\n" for k, v in values("inv-file-group").items()))
    write(src, "inventory/group_vars/all.yml", yaml_text("inv-group_vars-all"))
    write(src, "inventory/group_vars/storage/main.yml", yaml_text("inv-group_vars-group"))
    write(src, "inventory/group_vars/storage/secret.yml", "vaulted_token: tok-9d7e6f5a\n")
    write(src, "inventory/host_vars/node_3.yml", yaml_text("inv-host_vars"))
    write(src, "play/group_vars/all.yml", yaml_text("pb-group_vars-all"))
    write(src, "play/group_vars/storage.yml", yaml_text("pb-group_vars-group"))
    write(src, "play/host_vars/node_3", yaml_text("pb-host_vars"))
    content = " ".join(f"v{k}={{{{ v{k} }}}}" for k in range(len(LAYERS)))
    write(src, "play/site.yml", textwrap.dedent(f"""\
        - hosts: storage
          gather_facts: false
          vars: {{{", ".join(f"{k}: {v}" for k, v in values("play-vars").items())}}}
          tasks:
            - copy:
                dest: "{{{{ out }}}}/{{{{ inventory_hostname }}}}"
                content: "{content} token={{{{ vaulted_token | hash('sha1') }}}} groups={{{{ group_names | join(',') }}}}\\n"
        """))
    vault_exe = Path(sys.executable).parent / "ansible-vault"
    subprocess.run([str(vault_exe) if vault_exe.exists() else shutil.which("ansible-vault"), "encrypt",
                    "--vault-password-file", str(password), str(src / "inventory/group_vars/storage/secret.yml")],
                   check=True, capture_output=True, timeout=120)
    outs = {}
    for tool in ("ansible", "gfsdeploy"):
        out = tmp_path / tool
        out.mkdir()
        extra = ["-e", f"out={out}", "-e", f"v{len(LAYERS) - 1}=extra", "--vault-password-file", str(password)]
        if tool == "ansible":
            exe = Path(sys.executable).parent / "ansible-playbook"
            cmd = [str(exe) if exe.exists() else shutil.which("ansible-playbook"), "-i", str(src / "inventory"),
                   str(src / "play/site.yml"), *extra]
        else:
            cmd = [sys.executable, "-m", "gfsdeploy", "apply", str(src / "inventory"), "-p",
                   str(src / "play/site.yml"), *extra, "-e", f"gfsdeploy_lock_dir={tmp_path}/lock"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False,
                              env={**os.environ, "ANSIBLE_HOST_KEY_CHECKING": "false"})
        assert proc.returncode == 0, proc.stdout + proc.stderr
        if tool == "gfsdeploy":
            assert "tok-9d7e6f5a" not in proc.stdout + proc.stderr
        outs[tool] = {p.name: p.read_text() for p in sorted(out.iterdir())}
    assert outs["gfsdeploy"] == outs["ansible"]
    assert sorted(outs["ansible"]) == ["node_1", "node_2", "node_3"]
    # the comparison can fail: node_3 shows every layer winning once, node_1 the group side
    won = dict(pair.split("=", 1) for pair in outs["gfsdeploy"]["node_3"].split()[:len(LAYERS)])
    assert [won[f"v{k}"] for k in range(len(LAYERS))] == LAYERS
    assert outs["gfsdeploy"]["node_1"].split()[5] == "v5=pb-group_vars-group"
