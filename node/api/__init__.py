"""The node's HTTP surface (aiohttp): health, readiness, metrics, status, and the REST API."""
