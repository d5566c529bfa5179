"""The one-machine mesh for testers: what ``yrd mesh up``, ``yrd demo``, ``yrd load`` and
``yrd chaos`` put around real nodes to run and disturb a federation on one machine.

This is the layer just under ``cli``: it may import anything below it (``runtime``,
``api`` and every layer under them), and nothing under it may import it. A node never
depends on it; the mesh's own processes (nodes, simulated platforms) are started by their
command lines, so a process boundary, not an import, is what ties them to it.

- ``faults``: the pure model of a faulty network link (latency, jitter, loss, bandwidth,
  blackhole, partition, reset), decided chunk by chunk with a seeded random generator.
- ``links``: the fault-injecting TCP proxies, one per directed link, that carry the nodes'
  mutual-TLS gRPC untouched.
- ``link_control``: the control file through which a tester changes a running mesh's links.
"""
