"""Differential, on this machine (local hosts, no lab): what a step reads of the other
hosts — in a template file it renders, in a variable from vars_files, in its own
arguments — is what they set in the steps before it, whichever host is slower.
ansible-playbook's linear strategy finishes every host's step before any host starts the
next; gfsdeploy lets hosts run ahead, except where a step reads others."""

from __future__ import annotations

import re

from tests.ansible_compat.harness import run_local_both

#: the tasks every case starts with: host b is slower, then each host sets its value
SLOWER_B_SETS_VALUE = """\
    - name: the second host is slower
      command: sleep 1
      when: inventory_hostname == 'b'
      changed_when: false
    - name: each host's value
      set_fact:
        value: "{{ inventory_hostname }}-v"
"""
#: a template reading every host's value, and a vars file reading the other host's
ALL_VALUES_TEMPLATE = "{% for h in groups['all'] %}{{ h }}={{ hostvars[h].value | default('MISSING') }}\n{% endfor %}"
OTHER_VALUE_VARS = \
    "other_value: \"{{ hostvars['b' if inventory_hostname == 'a' else 'a'].value | default('MISSING') }}\"\n"

PLAYBOOK = """
- hosts: all
  gather_facts: false
  vars_files: [shared.yaml]
  tasks:
""" + SLOWER_B_SETS_VALUE + """\
    - name: a template file reading every host
      template: {src: all.j2, dest: "{{ dir }}/{{ inventory_hostname }}-template"}
    - name: a variable from vars_files reading the other host
      copy: {dest: "{{ dir }}/{{ inventory_hostname }}-varsfile", content: "{{ other_value }}\\n"}
    - name: registers
      command: "echo {{ inventory_hostname }}-r"
      changed_when: false
      register: said
    - name: arguments reading every host
      copy:
        dest: "{{ dir }}/{{ inventory_hostname }}-args"
        content: "{% for h in ansible_play_hosts %}{{ hostvars[h].said.stdout }} {% endfor %}\\n"
"""


def test_what_a_step_reads_of_other_hosts_is_what_ansible_reads(tmp_path):
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "all.j2").write_text(ALL_VALUES_TEMPLATE)
    (tmp_path / "shared.yaml").write_text(OTHER_VALUE_VARS)
    dirs = run_local_both(tmp_path, PLAYBOOK, hosts=("a", "b"), gfsdeploy_args=("--forks", "2"))
    out = {tool: {p.name: p.read_text() for p in sorted(d.iterdir())} for tool, d in dirs.items()}
    assert out["gfsdeploy"] == out["ansible"]
    # what the case is about: nothing read before the other host set it
    assert out["ansible"]["a-template"] == "a=a-v\nb=b-v\n" and out["ansible"]["a-varsfile"] == "b-v\n"
    assert out["ansible"]["a-args"] == "a-r b-r \n"



def test_files_named_by_templates_are_looked_into_too(tmp_path):
    """A vars_files entry named by a template and a templated template ``src`` found next
    to the playbook (not under templates/): what they read of the other host is what it
    set before (they were not looked into: a host ran ahead and read MISSING)."""
    (tmp_path / "vars").mkdir()
    (tmp_path / "vars" / "prod.yaml").write_text(OTHER_VALUE_VARS)
    (tmp_path / "all.j2").write_text(ALL_VALUES_TEMPLATE)
    dirs = run_local_both(tmp_path, """
- hosts: all
  gather_facts: false
  vars: {env: prod, name: all}
  vars_files: ["vars/{{ env }}.yaml"]
  tasks:
""" + SLOWER_B_SETS_VALUE + """\
    - name: a templated src
      template: {src: "{{ name }}.j2", dest: "{{ dir }}/{{ inventory_hostname }}-template"}
    - name: a variable from a templated vars_files name
      copy: {dest: "{{ dir }}/{{ inventory_hostname }}-varsfile", content: "{{ other_value }}\\n"}
""", hosts=("a", "b"), gfsdeploy_args=("--forks", "2"))
    out = {tool: {p.name: p.read_text() for p in sorted(d.iterdir())} for tool, d in dirs.items()}
    assert out["gfsdeploy"] == out["ansible"]
    assert out["ansible"]["a-template"] == "a=a-v\nb=b-v\n" and out["ansible"]["a-varsfile"] == "b-v\n"


def test_a_template_ending_with_a_block_tag_keeps_its_last_newlines(tmp_path):
    """(Jinja's trim_blocks dropped the newline after the last ``{% endif %}``, and a
    value ending with a line break got the template's last one on top; Ansible puts back
    only the line breaks the result lacks.)"""
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "t.j2").write_text("a\n{% if true %}b{% endif %}\n")
    (tmp_path / "templates" / "u.j2").write_text("x\n{% for i in [1, 2] %}{{ i }} {% endfor %}\n\n")
    (tmp_path / "templates" / "v.j2").write_text("{{ block }}\n")
    dirs = run_local_both(tmp_path, """
- hosts: all
  gather_facts: false
  vars:
    block: |
      one
      two
  tasks:
    - template: {src: t.j2, dest: "{{ dir }}/t"}
    - template: {src: u.j2, dest: "{{ dir }}/u"}
    - template: {src: v.j2, dest: "{{ dir }}/v"}
    - copy: {dest: "{{ dir }}/c", content: "{% for h in [1, 2] %}{{ h }} {% endfor %}\\n"}
    - copy: {dest: "{{ dir }}/b", content: "v={{ block }}\\n"}
""")
    out = {tool: {p.name: p.read_text() for p in sorted(d.iterdir())} for tool, d in dirs.items()}
    # (a value ending with its own line break gets none added: "{{ block }}\n" is block)
    assert out["gfsdeploy"] == out["ansible"] == {"t": "a\nb\n", "u": "x\n1 2 \n\n", "c": "1 2 \n",
                                                  "v": "one\ntwo\n", "b": "v=one\ntwo\n"}


def test_max_fail_percentage_stops_every_host_before_the_next_task(tmp_path):
    """Ansible judges the percentage after each task, every host having done it: with one
    host of three failing slowly, no host writes the next task's file. (gfsdeploy let the
    other hosts run ahead and write it.)"""
    dirs = run_local_both(tmp_path, """
- hosts: all
  gather_facts: false
  max_fail_percentage: 30
  tasks:
    - name: the third host fails, slowly
      shell: "sleep 1; exit 1"
      when: inventory_hostname == 'c'
    - name: the next task
      copy: {dest: "{{ dir }}/{{ inventory_hostname }}-next", content: "x\\n"}
""", hosts=("a", "b", "c"), gfsdeploy_args=("--forks", "3"), fails=True)
    out = {tool: sorted(p.name for p in d.iterdir()) for tool, d in dirs.items()}
    assert out["gfsdeploy"] == out["ansible"] == []



def test_end_play_is_decided_for_the_first_host_on_behalf_of_all(tmp_path):
    """Ansible's linear strategy runs end_play once, for the first host, on behalf of all
    (its `when` judged for that host): a `when` true only for the second host ends
    nothing (gfsdeploy ended the play for every host)."""
    dirs = run_local_both(tmp_path, """
- hosts: all
  gather_facts: false
  tasks:
    - name: before
      copy: {dest: "{{ dir }}/{{ inventory_hostname }}-before", content: "x\\n"}
    - meta: end_play
      when: inventory_hostname == 'b'
    - name: after a conditional end_play
      copy: {dest: "{{ dir }}/{{ inventory_hostname }}-next", content: "x\\n"}
    - meta: end_play
      when: inventory_hostname == 'a'
    - name: after an end_play decided true
      copy: {dest: "{{ dir }}/{{ inventory_hostname }}-last", content: "x\\n"}
""", hosts=("a", "b"), gfsdeploy_args=("--forks", "2"))
    out = {tool: sorted(p.name for p in d.iterdir()) for tool, d in dirs.items()}
    assert out["gfsdeploy"] == out["ansible"] == ["a-before", "a-next", "b-before", "b-next"]


CLEARED = """
- hosts: all
  gather_facts: false
  tasks:
    - name: b fails
      command: /bin/false
      when: inventory_hostname == 'b'
    - name: forgive
      meta: clear_host_errors
      when: inventory_hostname == {first}
    - name: after
      copy: {{dest: "{{{{ dir }}}}/{{{{ inventory_hostname }}}}-after", content: "{{{{ ansible_play_hosts | join(',') }}}}\\n"}}
- hosts: all
  gather_facts: false
  tasks:
    - name: next play
      copy: {{dest: "{{{{ dir }}}}/{{{{ inventory_hostname }}}}-next", content: "{{{{ ansible_play_hosts | join(',') }}}}\\n"}}
"""


def test_clear_host_errors_forgives_every_host_of_the_play_from_the_next_play_on(tmp_path):
    """Ansible runs clear_host_errors once, for the first host (its `when` judged there),
    for every host of the play: the failed host does not resume this play (nor is it back
    in ansible_play_hosts), runs the next play, and the run exits 0. gfsdeploy ran it on
    each live host, forgave nothing and exited 1. A `when` false for the first host
    forgives nothing, in both."""
    (tmp_path / "forgiven").mkdir()
    (tmp_path / "not").mkdir()
    dirs = run_local_both(tmp_path / "forgiven", CLEARED.format(first="'a'"), hosts=("a", "b"))
    out = {tool: {p.name: p.read_text() for p in sorted(d.iterdir())} for tool, d in dirs.items()}
    assert out["gfsdeploy"] == out["ansible"] == {"a-after": "a\n", "a-next": "a,b\n", "b-next": "a,b\n"}
    dirs = run_local_both(tmp_path / "not", CLEARED.format(first="'b'"), hosts=("a", "b"), fails=True)
    out = {tool: {p.name: p.read_text() for p in sorted(d.iterdir())} for tool, d in dirs.items()}
    assert out["gfsdeploy"] == out["ansible"] == {"a-after": "a\n", "a-next": "a\n"}
    # a failure gfsdeploy's plan already sees (`fail` runs in the plan): forgiven, it does
    # not stop the apply either (the plan refused it: "fix the errors above")
    (tmp_path / "planned").mkdir()
    dirs = run_local_both(tmp_path / "planned", CLEARED.format(first="'a'").replace(
        "command: /bin/false", "fail: {msg: no}"), hosts=("a", "b"))
    out = {tool: {p.name: p.read_text() for p in sorted(d.iterdir())} for tool, d in dirs.items()}
    assert out["gfsdeploy"] == out["ansible"] == {"a-after": "a\n", "a-next": "a,b\n", "b-next": "a,b\n"}


FACTS_CLEARED = """
- hosts: all
  gather_facts: true
  gather_subset: [min]
  tasks:
    - name: forget
      meta: clear_facts
      when: inventory_hostname == {first}
    - name: what is left
      copy: {{dest: "{{{{ dir }}}}/{{{{ inventory_hostname }}}}", content: "{{{{ 'system' in ansible_facts }}}}\\n"}}
"""


def test_clear_facts_is_decided_for_the_first_host_and_forgets_every_host_s_facts(tmp_path):
    """Ansible runs clear_facts once, for the first host, and forgets every play host's
    facts; a `when` true only for the second host forgets nothing (gfsdeploy forgot the
    second host's facts only). ``ansible_facts`` stays defined, empty (gfsdeploy said it
    was undefined)."""
    out = {}
    for first in ("a", "b"):
        (tmp_path / first).mkdir()
        dirs = run_local_both(tmp_path / first, FACTS_CLEARED.format(first=repr(first)), hosts=("a", "b"))
        out[first] = {tool: {p.name: p.read_text() for p in sorted(d.iterdir())} for tool, d in dirs.items()}
    # (a whole-string boolean: the text's line break is not kept, by either)
    assert out["a"]["gfsdeploy"] == out["a"]["ansible"] == {"a": "False", "b": "False"}
    assert out["b"]["gfsdeploy"] == out["b"]["ansible"] == {"a": "True", "b": "True"}



UNREACHABLE_CLEARED = """
- hosts: all
  gather_facts: false
  tasks:
    - name: reach
      command: /bin/true
    - name: forgive
      meta: clear_host_errors
    - name: after
      copy: {{dest: "{{{{ dir }}}}/{{{{ inventory_hostname }}}}-after", content: "{{{{ ansible_play_hosts | join(',') }}}}\\n"}}
- hosts: {second}
  gather_facts: false
  tasks:
    - name: next play
      copy: {{dest: "{{{{ dir }}}}/{{{{ inventory_hostname }}}}-next", content: "{{{{ ansible_play_hosts | join(',') }}}}\\n"}}
"""



def test_clear_host_errors_does_not_forgive_an_unreachable_host_and_says_so(tmp_path):
    """Ansible forgets at clear_host_errors that a host was unreachable and connects to it
    again: host b resumes the play after the meta task (here it is still unreachable:
    unreachable=2, exit 4). gfsdeploy plans every host before changing any: an unreachable
    host stops the run with nothing changed, and the plan's error now says that the meta
    task does not forgive it, and how to leave the host out (before, it said only
    "unreachable", as if the meta task had been honoured and failed)."""
    from tests.engine.conftest import _free_port

    b = {"ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": _free_port(),
         "ansible_user": "root", "ansible_ssh_common_args": "-o BatchMode=yes -o ConnectTimeout=5"}
    dirs = run_local_both(tmp_path, UNREACHABLE_CLEARED.format(second="all"), hosts=("a", "b"),
                          host_vars={"b": b}, fails=True)
    ansible_log = (tmp_path / "ansible.log").read_text()
    assert re.search(r"^b +: ok=0 +changed=0 +unreachable=2 ", ansible_log, re.M), ansible_log
    assert sorted(p.name for p in dirs["ansible"].iterdir()) == ["a-after", "a-next"]
    assert not list(dirs["gfsdeploy"].iterdir())  # (its plan stopped it: nothing changed)
    log = (tmp_path / "gfsdeploy.log").read_text()
    assert "host b: meta: clear_host_errors does not forgive an unreachable host in gfsdeploy" in log, log
    assert "fix: bring b up, or leave it out with --limit '!b'" in log, log
    # what the error proposes works: without b, the run goes on (Ansible's own run has
    # failed above: b was unreachable again)
    (tmp_path / "limited").mkdir()
    dirs = run_local_both(tmp_path / "limited", UNREACHABLE_CLEARED.format(second="all"), hosts=("a", "b"),
                          host_vars={"b": b}, gfsdeploy_args=("--limit", "!b"), ansible_args=("--limit", "!b"))
    out = {tool: {p.name: p.read_text() for p in sorted(d.iterdir())} for tool, d in dirs.items()}
    assert out["gfsdeploy"] == out["ansible"] == {"a-after": "a\n", "a-next": "a\n"}
