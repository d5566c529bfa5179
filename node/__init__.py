"""Yangtze River Delta federation node.

One node per province exchanges signed envelopes with its peers over mutual-TLS gRPC
(see DESIGN.md). Sub-packages hold one concern each: ``wire`` (generated protobuf),
``protocol`` (sans-I/O envelope codec and receiver checks), ``trust`` (keys, TLS material,
manifest), ``store`` (single-writer SQLite), ``delivery`` (per-peer outbox workers),
``transport`` (gRPC server and client), ``runtime`` (wiring a running node), ``api`` (HTTP)
and ``cli`` (the ``yrd`` command).
"""
