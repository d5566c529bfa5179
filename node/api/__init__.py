"""The node's HTTP surface (aiohttp): health, readiness, metrics, status, the REST API, the
dashboard and OpenAPI, and ``service``: ``yrd node run``'s node with its HTTP server.

May import ``runtime`` and every layer below it; never ``mesh`` or ``cli``.
"""
