"""Operator-facing observability: metric definitions and the federation status view."""
