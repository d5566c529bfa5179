"""Peers: who this node talks to, and the one way it sends to them.

What lives here:

- ``peer`` / ``registry``: the ``Peer`` record (channel, delivery worker, tasks) and the
  ``PeerRegistry`` that keeps the peers matching the manifest (connect, move, drop) and
  hands out each peer's ``PeerLink``.
- ``courier``: the ``Courier``, the only code that seals for a peer, puts sealed messages in
  the outbox (in the caller's transaction), wakes delivery workers, settles their replies and
  asks a peer a question with the reply checked (``ask``). Services never seal or call a
  channel themselves.
- ``heartbeat``: signed liveness checks, sent through ``Courier.ask``.
- ``inbound``: the receiving pipeline (checks, store, receipt), with each payload type's
  validator, effect and responder registered by the service that handles that type
  (``PayloadHandler``).

Layer: between ``delivery`` and ``certificates``. It may import ``wire``, ``identifiers``,
``vocabulary``, ``text``, ``trust``, ``protocol``, ``store``, ``transport`` and ``delivery``
(and ``monitoring`` for metric types) — never ``certificates``, ``cases``, ``platform``,
``runtime``, ``api``, ``mesh`` or ``cli``, not even under ``TYPE_CHECKING``.
"""
