#!/usr/bin/python
# -*- coding: utf-8 -*-
"""A test module in the style of kubespray's library/kube.py (AnsibleModule, a
KubeManager running kubectl through run_command), which also supports check mode:
plan can preview it."""

DOCUMENTATION = """
---
module: kubeapply
short_description: Kubernetes objects from a manifest file, through kubectl
options:
  name: {required: false, description: [A label for messages]}
  filename: {required: true, aliases: [file, files], description: [Manifest file(s) on the host]}
  kubectl: {required: false, description: [Path to kubectl]}
  kubeconfig: {required: false}
  namespace: {required: false}
  state: {required: false, default: present, choices: [present, absent]}
attributes:
  check_mode: {support: full}
  diff_mode: {support: full}
"""


class KubeManager(object):

    def __init__(self, module):
        self.module = module
        self.kubectl = module.params.get('kubectl') or module.get_bin_path('kubectl', True)
        self.base_cmd = [self.kubectl]
        if module.params.get('kubeconfig'):
            self.base_cmd.append('--kubeconfig=' + module.params.get('kubeconfig'))
        if module.params.get('namespace'):
            self.base_cmd.append('--namespace=' + module.params.get('namespace'))
        self.filename = [f.strip() for f in module.params.get('filename') or []]

    def _execute(self, cmd):
        args = self.base_cmd + cmd
        rc, out, err = self.module.run_command(args)
        if rc != 0:
            self.module.fail_json(msg='error running kubectl (%s) command (rc=%d), out=%r, err=%r'
                                  % (' '.join(args), rc, out, err))
        return out.splitlines()

    def files(self):
        import os
        missing = [f for f in self.filename if not os.path.exists(f)]
        if missing:
            self.module.fail_json(msg='manifest not found: %s' % ', '.join(missing))
        return '--filename=' + ','.join(self.filename)

    def existing(self):
        rc, out, err = self.module.run_command(self.base_cmd + ['get', self.files(), '-o', 'name'])
        return out.split() if rc == 0 else []

    def manifests(self):
        text = ''
        for name in self.filename:
            with open(name) as handle:
                text += handle.read()
        return text


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(),
            filename=dict(type='list', required=True, aliases=['files', 'file']),
            kubectl=dict(),
            kubeconfig=dict(),
            namespace=dict(),
            state=dict(default='present', choices=['present', 'absent']),
        ),
        supports_check_mode=True,
    )
    manager = KubeManager(module)
    state = module.params['state']
    existing = manager.existing()
    result = dict(changed=False, objects=existing)
    if state == 'present' and not existing:
        result['changed'] = True
        if module._diff:
            result['diff'] = dict(before='', after=manager.manifests(), after_header=','.join(manager.filename))
        if not module.check_mode:
            out = manager._execute(['create', manager.files()])
            result['objects'] = [line.split()[0] for line in out if line.strip()]
    elif state == 'absent' and existing:
        result['changed'] = True
        if module._diff:
            result['diff'] = dict(before='\n'.join(existing) + '\n', after='')
        if not module.check_mode:
            manager._execute(['delete', manager.files()])
            result['objects'] = []
    module.exit_json(msg='%s: %s' % (module.params.get('name') or 'kubeapply', ' '.join(result['objects'])),
                     **result)


from ansible.module_utils.basic import *  # noqa
if __name__ == '__main__':
    main()
