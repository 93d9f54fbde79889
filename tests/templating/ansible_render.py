"""Render expressions with ansible-core's Templar (run as a subprocess by the
differential tests, so ansible's global state stays out of the test process).

stdin: {"vars": {...}, "expressions": [...]}; stdout: one result per expression,
{"value": ...} or {"error": "..."}."""

import json
import sys
import warnings

warnings.simplefilter("ignore")

from ansible.plugins.loader import init_plugin_loader  # noqa: E402

init_plugin_loader()  # the collections (community.general, ansible.utils) of the `ansible` package

from ansible.parsing.dataloader import DataLoader  # noqa: E402
from ansible.template import Templar, trust_as_template  # noqa: E402


def plain(value):
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return value
    return repr(value)


def main():
    request = json.load(sys.stdin)
    loader = DataLoader()
    loader.set_basedir(request["basedir"])
    variables = {k: trust_as_template(v) if isinstance(v, str) and "{{" in v else v
                 for k, v in request["vars"].items()}
    templar = Templar(loader=loader, variables=variables)
    out = []
    for expression in request["expressions"]:
        try:
            out.append({"value": plain(templar.template(trust_as_template(expression)))})
        except Exception as exc:  # noqa: BLE001 - the error is the result
            out.append({"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"})
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
