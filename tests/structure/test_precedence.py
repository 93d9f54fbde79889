"""Ansible's variable precedence, level by level, compared with ansible-playbook.

Variable ``vN`` is defined at level N and at every lower level, so the value it
ends with names the level that won. Levels, lowest first: role defaults,
inventory (all, group, host), play vars, vars_files, role vars, block vars, task
vars, include_vars, set_fact, role params, include params, extra vars."""

from __future__ import annotations

from tests.structure.conftest import assert_same

LEVELS = ["role-defaults", "inv-all", "inv-group", "inv-host", "play-vars", "vars-files", "role-vars",
          "block-vars", "task-vars", "include-vars", "set-fact", "role-params", "include-params", "extra"]


def upto(level: str, indent: int = 0) -> str:
    """YAML lines defining v<k> = level for every k >= the level's number."""
    n = LEVELS.index(level) + 1
    pad = " " * indent
    return "\n".join(f"{pad}v{k}: {level}" for k in range(n, len(LEVELS) + 1))


def flow(level: str) -> str:
    n = LEVELS.index(level) + 1
    return "{" + ", ".join(f"v{k}: {level}" for k in range(n, len(LEVELS) + 1)) + "}"


def test_precedence_matches_ansible(site):
    site.write("roles/prec/defaults/main.yml", upto("role-defaults") + "\n")
    site.write("roles/prec/vars/main.yml", upto("role-vars") + "\n")
    site.write("roles/prec/vars/inc.yml", upto("include-vars") + "\n")
    site.write("vars/files.yml", upto("vars-files") + "\n")
    content = "".join(f"v{k}={{{{ v{k} }}}} " for k in range(1, len(LEVELS) + 1))
    site.write("roles/prec/tasks/main.yml", f"""\
        - include_vars: inc.yml
        - set_fact: {flow("set-fact")}
        - include_tasks: write.yml
          vars: {flow("include-params")}
        """)
    site.write("roles/prec/tasks/write.yml", f"""\
        - block:
            - name: write what won
              copy:
                dest: "{{{{ out }}}}/prec-{{{{ inventory_hostname }}}}"
                content: "{content}\\n"
              vars: {flow("task-vars")}
          vars: {flow("block-vars")}
        """)
    site.write("site.yml", f"""\
        - hosts: all
          gather_facts: false
          vars: {flow("play-vars")}
          vars_files: [vars/files.yml]
          roles:
            - role: prec
              {flow("role-params")[1:-1].replace(", ", chr(10) + "              ")}
        - hosts: all
          gather_facts: false
          tasks:
            - name: hostvars carry set_fact and inventory
              copy:
                dest: "{{{{ out }}}}/hostvars-{{{{ inventory_hostname }}}}"
                content: "{{{{ hostvars['a'].v11 }}}} {{{{ hostvars['b'].v4 }}}} {{{{ v12 | default('gone') }}}}\\n"
        """)
    hosts = {"a": {**{f"v{k}": "inv-host" for k in range(4, 15)}}, "b": {}}
    group = {f"v{k}": "inv-all" for k in range(2, 15)}
    groups = {"g": {"hosts": ["a", "b"], "vars": {f"v{k}": "inv-group" for k in range(3, 15)}}}
    ansible, gfs = site.both("site.yml", hosts, group_vars=group, groups=groups, extra=["-e", "v14=extra"])
    assert_same(ansible, gfs)
    # and it says what the table says (the test can fail on its own)
    values = dict(pair.split("=") for pair in gfs["prec-a"].split())
    assert [values[f"v{k}"] for k in range(1, 15)] == LEVELS
    assert gfs["prec-b"].split()[3] == "v4=inv-group"
