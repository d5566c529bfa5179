"""Cross-province cases (跨省通办): the canonical lifecycle both sides agree on.

``lifecycle`` is the sans-I/O core: statuses, actions, which side (收件地 accepting,
办理地 handling) owns each action, the fields each action needs, and the per-case sequencer
that applies signed case updates in order. ``catalog``, ``calendar`` and ``submission`` are
rules too (matters, working days, a new case's checks); ``exchange`` and ``announce`` are the
service that stores cases, sends through the courier and handles peers' messages.

May import ``certificates``, ``peers``, ``delivery`` and every layer below them; never
``platform``, ``runtime`` or anything above (``exchange`` still names the ``Node`` under
``TYPE_CHECKING``, the one exception listed in pyproject's import-linter contract).
"""
