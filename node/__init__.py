"""Yangtze River Delta federation node.

One node per province exchanges signed envelopes with its peers over mutual-TLS gRPC
(see DESIGN.md). Sub-packages hold one concern each, in layers that import only downward,
low to high: ``wire``, ``identifiers``, ``vocabulary``, ``text`` (the ground floor) →
``trust`` → ``protocol`` → ``store`` → ``transport`` → ``delivery`` → ``peers`` (to come) →
``certificates`` → ``cases`` → ``platform`` → ``runtime`` → ``api`` → ``mesh`` → ``cli``.
README "Layout" says what each holds; ``make lint`` checks the layers (import-linter).
"""
