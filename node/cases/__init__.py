"""Cross-province cases (跨省通办): the canonical lifecycle both sides agree on.

``lifecycle`` is the sans-I/O core: statuses, actions, which side (收件地 accepting,
办理地 handling) owns each action, the fields each action needs, and the per-case sequencer
that applies signed case updates in order. Storage, transport and the REST surface are thin
adapters around it and live elsewhere.
"""
