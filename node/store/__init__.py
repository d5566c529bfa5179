"""The node's durable memory: one SQLite file that holds everything the node has promised.

- ``database``: the single-writer connection with group commit; a write is durable (WAL,
  ``synchronous=FULL``) when ``Database.write`` returns, and a corrupt file stops start-up.
- ``schema``: numbered migrations; ``PRAGMA user_version`` says which have run.
- ``outbox``: messages this node must deliver, per peer in ``seq`` order, with a persisted
  cursor below which everything is settled (delivered or dead-lettered).
- ``inbox``: ids and replies of messages this node accepted, so re-delivery is idempotent.
- ``audit``: the append-only, hash-chained evidence log of envelopes, replies and manifests,
  with ``log_tree`` keeping it as an RFC 9162 Merkle tree, ``evidence`` building one
  message's checkable bundle, and retention (``audit.purge``) that keeps every proof valid.

The row-level modules are plain synchronous functions over a ``sqlite3.Connection``: they run
inside a ``Database.write`` job (writes) or on ``Database.reader()`` (small reads), and tests
drive them with a real file and no event loop. May import ``protocol``, ``trust``, ``wire``
and the ground floor only.
"""
