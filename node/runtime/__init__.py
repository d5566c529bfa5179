"""A running node: its configuration and the wiring of store, trust, transport and delivery."""
