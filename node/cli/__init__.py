"""The ``yrd`` command: one ``*_cmd.py`` module per command group (``demo`` is ``yrd demo``),
wired together in ``main``; ``output`` and ``progress`` say how commands print, and
``node_client`` how a command names a node and turns its answers into exit codes.

Only commands live here: the machinery they drive is in the layers below. The top layer:
it may import everything (``mesh``, ``api``, ``runtime`` …), and nothing imports it.
"""
