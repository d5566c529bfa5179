"""Sans-I/O protocol core: the envelope codec, the receiver checks and the refusal codes.

Nothing here opens a socket, touches the event loop or the database: bytes and a clock go
in, a verdict comes out. The gRPC servicer and the delivery workers are thin shells around it.
"""
