#!/usr/bin/python3
"""A playbook's own module (as real playbooks ship in library/): one key of an INI file."""

import configparser
import os

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(argument_spec={"path": {"type": "path", "required": True},
                                          "section": {"type": "str", "required": True},
                                          "key": {"type": "str", "required": True},
                                          "value": {"type": "str", "required": True}},
                           supports_check_mode=True)
    p = module.params
    config = configparser.ConfigParser()
    if os.path.exists(p["path"]):
        config.read(p["path"])
    before = config.get(p["section"], p["key"], fallback=None)
    if before == p["value"]:
        module.exit_json(changed=False, value=before)
    if not module.check_mode:
        if not config.has_section(p["section"]):
            config.add_section(p["section"])
        config.set(p["section"], p["key"], p["value"])
        with open(p["path"], "w") as handle:
            config.write(handle)
    module.exit_json(changed=True, value=p["value"], previous=before,
                     diff={"before": f"{p['key']} = {before}\n" if before is not None else "",
                           "after": f"{p['key']} = {p['value']}\n"})


if __name__ == "__main__":
    main()
