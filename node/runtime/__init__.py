"""A running node: its configuration (``config``), the wiring and lifecycle of store, trust,
transport, delivery, peers, cases, certificates and the platform link (``node``), the
credentials in force (``credentials``: manifest and key loaded, recorded, reloaded), the
start-up rules (``startup``), how it is doing (``health``: readiness, status, metric
snapshots, maintenance mode), supervision of its tasks (``supervisor``) and its logs, and
asking its witnesses for the heads of its log from a process beside it (``witnesses``).

May import every layer below it (``platform``, ``cases``, ``certificates``, ``peers``,
``delivery``, ``transport``, ``store``, ``protocol``, ``trust``, the ground floor); never
``api``, ``mesh`` or ``cli``. Serving a node over HTTP is ``node.api.service``; the
one-machine mesh of node processes is ``node.mesh``.
"""
