"""Sans-I/O protocol core: the envelope and batch codec (``envelope``), RFC 9162 Merkle
trees (``merkle``), the receiver checks (``checks``), replies and the refusal codes.

Nothing here opens a socket, touches the event loop or the database: bytes and a clock go
in, a verdict comes out. The gRPC servicer and the delivery workers are thin shells around it.
May import ``trust``, ``wire`` and the ground floor only.
"""
