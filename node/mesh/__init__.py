"""The one-machine mesh for testers: what ``yrd mesh``, ``yrd demo``, ``yrd load`` and
``yrd chaos`` put around real nodes to run and disturb a federation on one machine.

This is the layer just under ``cli``: it may import anything below it (``api``,
``runtime`` and every layer under them), and only ``cli`` imports it. A node never
depends on it; the mesh's own processes (nodes, simulated platforms) are started by their
command lines, so a process boundary, not an import, is what ties them to it.

- ``layout``: the mesh folder ``yrd mesh init`` writes (CA, governance key, manifest, each
  node's keys and ``node.toml``), and the governance operations on it (publishing a
  manifest, rotating and revoking a signing key).
- ``processes``: ``Mesh``, which starts, waits for and stops the mesh's processes (platforms,
  nodes), and their command lines; ``record``: ``mesh.json`` and the names of the other
  files of a running mesh; ``logs``: the processes' owner-only log files and their tails;
  ``routes``: each ``node.toml``'s routes through the link proxies; ``leftovers``: the
  processes an earlier, killed run left, found by their command lines and stopped.
- ``supervisor``: ``yrd mesh up``'s supervisor, restarting what dies, with back-off.
- ``postgres_server``: a PostgreSQL server of one's own (the Debian package's programs, a
  free loopback port, an unprivileged user when root), for a mesh and for the tests;
  ``database``: a ``--store postgres`` mesh's server in ``DIR/postgres`` and its databases.
- ``node_control``: the control channel through which a tester stops and starts a node.
- ``access``: creating a mesh with its REST tokens, and finding a tool's token.
- ``auth``: HTTP sessions that carry the mesh's tokens; ``folder``: checking a mesh folder
  and reading its nodes' configs; ``node_api``: the HTTP client of one node's REST API.
- ``applications``: applications for the simulated platforms; ``load``: ``yrd load``'s
  case stream and figures; ``invariants``: what must hold across two nodes' histories;
  ``chaos``: ``yrd chaos``'s seeded schedule of crashes and network faults;
  ``scenario``: the cases and certificate checks of ``yrd demo``.
- ``faults``: the pure model of a faulty network link (latency, jitter, loss, bandwidth,
  blackhole, partition, reset), decided chunk by chunk with a seeded random generator.
- ``links``: the fault-injecting TCP proxies, one per directed link, that carry the nodes'
  mutual-TLS gRPC untouched.
- ``link_control``: the control file through which a tester changes a running mesh's links.
"""
