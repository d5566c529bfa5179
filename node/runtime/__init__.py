"""A running node: its configuration (``config``), the wiring of store, trust, transport,
delivery, cases, certificates and the platform link (``node``), inbound processing,
heartbeats, supervision of its tasks and its logs.

May import every layer below it (``platform``, ``cases``, ``certificates``, ``delivery``,
``transport``, ``store``, ``protocol``, ``trust``, the ground floor); never ``api``,
``mesh`` or ``cli``. Serving a node over HTTP is ``node.api.service``; the one-machine mesh
of node processes is ``node.mesh``.
"""
