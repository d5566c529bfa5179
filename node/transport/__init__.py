"""gRPC transport: the mutual-TLS server and the per-peer client channel.

Thin shells around the sans-I/O protocol: the server hands raw envelope bytes and the TLS
peer identity to an ``EnvelopeReceiver``; the client hands back raw reply bytes. Transport
errors are translated to ``node.transport.errors`` in one place and nowhere else.
May import ``store``, ``protocol``, ``trust``, ``wire`` and the ground floor only.
"""
