"""The node's own province platform: the adapter interface (``adapter``), the ``[platform]``
section of node.toml (``config``) and the node's side of the link (``link``: reading the
platform's feeds into cases, handing it what arrives), given narrow parts — a store getter,
the clock, the case service as a ``CaseDesk`` — never the Node.

May import ``cases``, ``certificates``, ``peers``, ``delivery`` and every layer below them;
never ``runtime`` or anything above it. The dialects themselves live in ``adapters/``.
"""
