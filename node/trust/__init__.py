"""Trust material: signing keys (``keys``), TLS certificates chained to the federation CA
(``tls``) and the signed federation manifest (``manifest``).

May import only the ground floor (``wire``, ``identifiers``, ``vocabulary``, ``text``).
The mesh folder that ``yrd mesh init`` writes with them is ``node.mesh.layout``.
"""
