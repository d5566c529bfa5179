"""The simulated-platform engine every province's dialect shares (DESIGN.md §8).

Modules, each with its rules in its docstring:

- ``seed``: deterministic, realistic people, companies and certificates of one province.
- ``store``: the platform's own SQLite file (applications and the federation's refusals of
  them, inbound cases, notices, the event feed), idempotent on every delivery.
- ``officer``: the simulated officer (works inbound cases) and applicant (answers supplement
  requests, evaluates), restart-safe, deterministic from the seed and the case id.
- ``platform``: ``SimulatedPlatform``, the one object a dialect's HTTP handlers call, and
  the ``aiohttp`` application with ``GET /sim/fixtures`` and the background people.
- ``run``: ``python -m adapters.simulation.run --province P --listen HOST:PORT --db PATH
  --seed N --officer-delay SECONDS``.

A dialect author writes ``adapters/<province>/platform.py``: routes that translate the
dialect and call ``SimulatedPlatform``, declared with the dialect's error reply and gate as a
``Front``, whose ``build_platform`` the package exposes; see ``adapters/shanghai`` for the
worked example.
"""
