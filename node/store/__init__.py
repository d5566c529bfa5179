"""The node's durable memory: one store that holds everything the node has promised, a SQLite
file by default or a PostgreSQL database (``[store] url``).

- ``database``: the single-writer connection with group commit; a write is durable (WAL,
  ``synchronous=FULL``) when ``Database.write`` returns, and a corrupt file stops start-up.
  ``postgres``: the same on PostgreSQL; ``connection``: the connection protocol the store's
  SQL runs on, and where a store is; ``lock``: who may hold a store (one node process per
  SQLite file; the replicas of one node, and no other, on PostgreSQL).
- ``schema``: numbered migrations; ``PRAGMA user_version`` says which have run.
  ``schema_postgres``: the same logical schema, versioned the same, for PostgreSQL.
- ``outbox``: messages this node must deliver, per peer in ``seq`` order, with a persisted
  cursor below which everything is settled (delivered or dead-lettered).
- ``inbox``: ids and replies of messages this node accepted, so re-delivery is idempotent.
- ``leases``: which replica, where several share one store, does a job only one process may
  do (send a peer its outbox, read or feed the platform); a lapsed lease is taken over.
- ``audit``: the append-only, hash-chained evidence log of envelopes, replies and manifests,
  with ``log_tree`` keeping it as an RFC 9162 Merkle tree, ``evidence`` building one
  message's checkable bundle, and retention (``audit.purge``) that keeps every proof valid.

The row-level modules are plain synchronous functions over a ``Connection``: they run
inside a ``Database.write`` job (writes) or on ``Database.reader()`` (small reads), and tests
drive them with a real file and no event loop. May import ``protocol``, ``trust``, ``wire``
and the ground floor only.
"""
