"""The committed protobuf code is exactly what protoc makes from proto/ today."""

from __future__ import annotations

from pathlib import Path

from node.wire.generate import WIRE_ROOT, generate


def test_generated_code_matches_proto_sources(tmp_path: Path) -> None:
    """Regenerating into a temporary folder gives byte-identical files to those committed."""
    written = generate(tmp_path)
    assert written, "protoc wrote nothing"
    for relative in written:
        committed = WIRE_ROOT / relative
        assert committed.exists(), f"{relative} is generated but not committed (run make proto)"
        assert (tmp_path / relative).read_bytes() == committed.read_bytes(), (
            f"node/wire/{relative} is stale: run make proto and commit the result"
        )
    committed_files = {p.relative_to(WIRE_ROOT) for p in WIRE_ROOT.rglob("*_pb2.py*")}
    assert committed_files == set(written), "a committed _pb2 file no longer has a .proto"


def test_service_is_described_for_reflection() -> None:
    """The Federation service and its three methods are in the generated descriptor."""
    from node.wire import pb

    service = pb.DESCRIPTOR.services_by_name["Federation"]
    assert {m.name for m in service.methods} == {"Deliver", "DeliverStream", "Exchange"}
    assert service.methods_by_name["DeliverStream"].client_streaming
    exchange = service.methods_by_name["Exchange"]
    assert exchange.client_streaming and exchange.server_streaming
    assert exchange.input_type.name == exchange.output_type.name == "Batch"
