"""The flagship content: GlusterFS + heketi on Kubernetes.

Everything gfsdeploy knows about GlusterFS, heketi and Kubernetes lives here —
the task modules (``modules/``), the heketi REST client, the manifest helpers,
the local lab with its simulators, the Vagrant helpers — together with the
playbooks, templates and example inventories (``playbooks/``, ``templates/``,
``inventory/`` at the top of the source tree, ``share/`` inside the wheel).
The engine (:mod:`gfsdeploy`) finds it through :data:`plugin.CONTENT`.
"""
