"""The test suite. Imported before any test module: ``node`` first, so that its setting of
gRPC's fork handlers (off: see ``node/__init__.py``) holds before anything imports grpc."""

import node  # noqa: F401
