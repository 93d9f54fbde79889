"""Packaging glue: the wheel carries the shipped playbooks, templates and example
inventories (kept at the top of the repository) in ``gfsdeploy_glusterfs/share/``."""

import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

SHARED = ("playbooks", "templates", "inventory")
HERE = os.path.dirname(os.path.abspath(__file__))


class BuildWithShare(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads them from the source tree
        target = os.path.join(self.build_lib, "gfsdeploy_glusterfs", "share")
        for name in SHARED:
            source = os.path.join(HERE, name)
            if not os.path.isdir(source):
                continue
            dest = os.path.join(target, name)
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(source, dest, ignore=shutil.ignore_patterns("lab.yaml", "*.pyc", "__pycache__"))


setup(cmdclass={"build_py": BuildWithShare})
