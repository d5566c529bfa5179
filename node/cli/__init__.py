"""The ``yrd`` command: one module per command group, wired together in ``main``."""
