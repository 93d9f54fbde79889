"""paramiko, imported without invoke.

paramiko's ssh_config module imports invoke (about 40% of paramiko's import time:
~0.1 s of CPU on the lab machine, see bench/results/startup.json) only to run
``Match exec`` lines. gfsdeploy imports paramiko with invoke hidden, and hands
invoke to paramiko only when an ssh_config file it reads has a ``Match exec``
(:func:`enable_match_exec`). If a paramiko version needs invoke at import time,
it is imported the ordinary way.
"""

from __future__ import annotations

import sys


def load():
    if "paramiko" in sys.modules:
        return sys.modules["paramiko"]
    hidden = "invoke" not in sys.modules
    if hidden:
        sys.modules["invoke"] = None  # `import invoke` raises ImportError while this is set
    try:
        import paramiko
    except ImportError:
        for name in [m for m in sys.modules if m == "paramiko" or m.startswith("paramiko.")]:
            del sys.modules[name]
        if hidden and sys.modules.get("invoke", 0) is None:
            del sys.modules["invoke"]
        hidden = False
        import paramiko
    finally:
        if hidden and sys.modules.get("invoke", 0) is None:
            del sys.modules["invoke"]
    return paramiko


def enable_match_exec() -> None:
    """Give paramiko's ssh_config parser invoke, for ``Match exec`` lines."""
    config = sys.modules.get("paramiko.config")
    if config is not None and getattr(config, "invoke", True) is None:
        import invoke

        config.invoke = invoke
        config.invoke_import_error = None
