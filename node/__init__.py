"""Yangtze River Delta federation node.

One node per province exchanges signed envelopes with its peers over mutual-TLS gRPC
(see DESIGN.md). Sub-packages hold one concern each, in layers that import only downward,
low to high: ``wire``, ``identifiers``, ``vocabulary``, ``text`` (the ground floor) →
``trust`` → ``protocol`` → ``store`` → ``transport`` → ``delivery`` → ``peers`` →
``certificates`` → ``cases`` → ``platform`` → ``runtime`` → ``api`` → ``mesh`` → ``cli``.
README "Layout" says what each holds; ``make lint`` checks the layers (import-linter).
"""

import os

# gRPC's C core installs fork handlers (pthread_atfork) by default, though its Python layer
# does not support fork; a process of ours that forks only to exec another program (the
# mesh's PostgreSQL started as its own user, a test's helper) can then die in those handlers
# in the child ("Check failed: next_worker->state == KICKED") before the exec. Nothing here
# uses gRPC in a forked child, so they are off unless the environment says otherwise. gRPC
# reads this when it is imported: every ``python -m node…`` process imports this package
# first; the tests and benchmarks import it before grpc (``tests/__init__.py``, the top of
# each bench script that starts a database server).
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")
