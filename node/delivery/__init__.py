"""Outbound delivery: one worker per peer drains that peer's outbox.

How it works (the design, in one place):

- Everything a node promises to send is first a row in the ``outbox`` table, committed
  before the call that caused it returns. Workers only read the store; nothing is held only
  in memory.
- Each peer has one worker and one long-lived gRPC ``Exchange`` stream per lane, with at
  most one bounded batch in flight per lane. A peer with one endpoint has one lane; a peer
  running as replicas has one per endpoint, its rows split by correlation (``outbox.Lane``:
  a case's messages all in one lane, in order), each lane on its own replica. A batch is
  the lane's next ``batch_size`` pending rows above the peer's persisted cursor, in outbox
  order, sent as batch-signed frames (the channel signs them);
  replies come back in the same order, and with each reply the message as it went out (its
  batch signature and proof), which enters the evidence log and the outbox row with the
  reply.
- Each reply is checked (signature, addressed to us, answers that very message by digest).
  A receipt settles its row as delivered; a permanent refusal parks it (dead letter) with the
  peer's signed Fault as evidence; a transient refusal or a transport failure leaves it
  pending and the worker backs off (exponential with jitter, tenacity, capped at minutes).
- The cursor moves over settled rows only, so after an outage or a restart the worker
  catches up from where it was; receivers deduplicate by message id, so re-sending what was
  in flight when things broke has no second effect.
- A row pending longer than ``dead_letter_after_seconds`` is parked; ``yrd outbox retry``
  puts parked rows back in line.
- The circuit (``CircuitState``) tells operators and the heartbeat where each link stands.
- Where replicas of this node share one store, each peer's worker runs in every replica but
  only the holder of that peer's sender lease (``node.store.leases``) sends: one sender per
  peer keeps per-case order, and when the holder dies another replica takes the lapsed lease
  over and resumes from the outbox (what was in flight is sent again; receivers deduplicate).

``worker`` and ``circuit`` hold that; ``retry`` the wait-drain-back-off loop the worker and
the platform link share; ``config`` holds ``DeliveryConfig``, the
``[delivery]`` section of ``node.toml`` the workers take (read by ``node.runtime.config``).
May import ``transport``, ``store``, ``protocol``, ``trust`` and the ground floor; never
``runtime`` or anything above it.
"""
