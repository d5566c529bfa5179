"""Cross-province cases (跨省通办): the canonical lifecycle both sides agree on.

``lifecycle`` is the sans-I/O core: statuses, actions, which side (收件地 accepting,
办理地 handling) owns each action, the fields each action needs, and the per-case sequencer
that applies signed case updates in order. ``catalog``, ``calendar`` and ``submission`` are
rules too (matters, working days, a new case's checks); ``wire`` turns cases into messages
and back, and ``events`` parses a platform's events and builds what the platform is told.
``exchange`` and ``announce`` are the service that handles peers' messages and this side's
requests and sends through the courier; what the exchange records of a case's state is
``ledger``. ``federated`` is the catalog of all provinces, ``certificate_checks`` verifies
a case's certificate materials with their issuers, and ``views`` shows cases to the REST
API and the status view.

May import ``certificates``, ``peers``, ``delivery`` and every layer below them; never
``platform``, ``runtime`` or anything above: what ``exchange`` still reads of the node it
runs in it names as a protocol (``CaseNode``).
"""
