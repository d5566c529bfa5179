"""Province adapters and the simulated platforms they are tested against (DESIGN.md §8).

Layout:

- ``adapters.simulation``: the province-neutral engine every simulated platform shares
  (seeded data, its own SQLite store, the simulated officer and applicant, the process entry
  point and ``GET /sim/fixtures``). A dialect adds only its HTTP routes and translations.
- ``adapters.<province>``: one package per dialect, each exposing
  ``build_platform(store_path, *, seed, officer_delay, ...) -> aiohttp.web.Application``
  (the simulated platform) and ``make_adapter(base_url, *, credentials) -> ProvinceAdapter``
  (the node's client of it).
- ``adapters.registry``: province name → those two callables.
- ``adapters.translation``: the province-neutral translation steps (a case, a notice, an
  event, an application, a certificate and its face, a revocation, a matter, both ways),
  which each ``adapters.<province>.dialect`` parameterises with its names, code tables and
  formats.
- ``adapters.replies``: what every adapter makes of its platform's replies (feed records
  or ``Malformed``, the feed cursor, certificates and matters checked by the node's model).
- ``adapters.transport``: the one place where HTTP transport failures and 5xx answers
  become ``PlatformUnavailable``, and where every reply is read, for every adapter: whatever
  fails in reading it leaves as a ``DialectError`` naming the platform.
- ``adapters.strict_json``: strict reading of JSON for JSON dialects, nesting and numbers
  bounded before they are parsed.
"""
