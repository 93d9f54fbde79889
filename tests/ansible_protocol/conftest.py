"""Fixtures for the module-protocol tests: a clean protocol state per test, playbook
directories with a ``library/`` of small modules written here, and the engine's sshd."""

from __future__ import annotations

import os
import textwrap

import pytest

from gfsdeploy import ansible_protocol

# A module in the style of kubespray's library/kube.py (AnsibleModule, run_command),
# managing one file; it declares check mode and reports a diff, so plan can preview it.
SETTLE = '''\
#!/usr/bin/python
DOCUMENTATION = """
module: settle
short_description: a file with exactly this content
"""
import os
from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(
        argument_spec=dict(path=dict(type='path', required=True), content=dict(default=''),
                           token=dict(no_log=True), mode=dict(default='0644')),
        supports_check_mode=True)
    path, content = module.params['path'], module.params['content']
    before = open(path).read() if os.path.exists(path) else None
    changed = before != content
    result = dict(changed=changed, path=path, existed=before is not None)
    if module._diff:
        result['diff'] = dict(before=before or '', after=content, before_header=path, after_header=path)
    if changed and not module.check_mode:
        with open(path, 'w') as handle:
            handle.write(content)
        os.chmod(path, int(module.params['mode'], 8))
    if module.params['token'] and 'FAIL' in content:
        module.fail_json(msg='refused content with token ' + module.params['token'], **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
'''

# kube.py's own shape: no supports_check_mode, argument spec as dict(), the star import at the end
STAMP = '''\
#!/usr/bin/python
import os


def main():
    module = AnsibleModule(argument_spec=dict(path=dict(required=True), text=dict(default='stamped')))
    with open(module.params['path'], 'a') as handle:
        handle.write(module.params['text'] + '\\n')
    module.exit_json(changed=True, msg='stamped %s' % module.params['path'])


from ansible.module_utils.basic import *  # noqa
if __name__ == '__main__':
    main()
'''


@pytest.fixture(autouse=True)
def clean_protocol():
    ansible_protocol.reset()
    yield
    ansible_protocol.reset()


def write_tree(root, files: dict) -> str:
    """Write ``{relative path: text}`` under ``root``; returns ``root`` as str."""
    for rel, text in files.items():
        path = os.path.join(str(root), rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as handle:
            handle.write(textwrap.dedent(text) if not text.startswith("#!") else text)
        if rel.startswith("library/") and text.startswith("#!"):
            os.chmod(path, 0o755)
    return str(root)


@pytest.fixture
def sshd(tmp_path):
    from tests.engine.conftest import SSHD, Sshd

    if os.geteuid() != 0:
        pytest.skip("the sshd fixture runs sshd as root (CI runs as root)")
    if not os.path.exists(SSHD):
        pytest.skip("openssh-server is not installed (apt-get install openssh-server)")
    root = tmp_path / "sshd"
    root.mkdir()
    server = Sshd(str(root)).start()
    yield server
    server.stop()
