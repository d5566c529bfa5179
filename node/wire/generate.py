"""Regenerate the protobuf code in node/wire from proto/ (``make proto``).

``generate(out_dir)`` is also what the freshness test calls, into a temporary folder, to
prove the committed code matches the .proto sources.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PROTO_ROOT = REPO_ROOT / "proto"
WIRE_ROOT = Path(__file__).resolve().parent


def proto_sources() -> list[Path]:
    return sorted(PROTO_ROOT.rglob("*.proto"))


def generate(out_dir: Path) -> list[Path]:
    """Run protoc over every .proto under proto/; return the files written, relative."""
    from grpc_tools import protoc  # type: ignore[import-untyped]

    out_dir.mkdir(parents=True, exist_ok=True)
    sources = [str(p.relative_to(PROTO_ROOT)) for p in proto_sources()]
    include = str(Path(protoc.__file__).resolve().parent / "_proto")
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        *sources,
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed for {sources}")
    return sorted(p.relative_to(out_dir) for p in out_dir.rglob("*_pb2.py*"))


if __name__ == "__main__":
    written = generate(WIRE_ROOT)
    sys.stdout.write("".join(f"node/wire/{p}\n" for p in written))
