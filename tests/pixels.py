"""Reading a browser's PNG screenshot without an imaging library: the pixels of one colour,
and the connected shapes they form (the dashboard test finds its sparklines so).

Only what Chromium writes is read: 8-bit RGB or RGBA, not interlaced; anything else is an
error that says so.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunks(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    offset = len(SIGNATURE)
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        yield kind, data[offset + 8 : offset + 8 + length]
        offset += 12 + length


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def read_png(path: Path) -> tuple[int, int, int, list[bytes]]:
    """(width, height, bytes per pixel, rows of raw pixel bytes) of an 8-bit RGB(A) PNG."""
    data = path.read_bytes()
    if not data.startswith(SIGNATURE):
        raise ValueError(f"{path} is not a PNG")
    header, compressed = b"", bytearray()
    for kind, body in _chunks(data):
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            compressed += body
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    if depth != 8 or colour not in (2, 6) or interlace:
        raise ValueError(f"{path}: only 8-bit RGB/RGBA, not interlaced, is read here")
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(bytes(compressed))
    stride = width * bpp
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        if kind == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif kind == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, previous, strict=True))
        elif kind == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + previous[i]) >> 1)) & 0xFF
        elif kind == 4:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                corner = previous[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + _paeth(left, previous[i], corner)) & 0xFF
        elif kind != 0:
            raise ValueError(f"{path}: unknown filter {kind} on row {y}")
        rows.append(bytes(line))
        previous = line
    return width, height, bpp, rows


def pixels_of(path: Path, colour: str, tolerance: int = 24) -> set[tuple[int, int]]:
    """The (x, y) of every pixel within ``tolerance`` of ``colour`` (``#rrggbb``) on each
    channel."""
    want = tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))
    width, _, bpp, rows = read_png(path)
    found = set()
    for y, row in enumerate(rows):
        for x in range(width):
            r, g, b = row[x * bpp], row[x * bpp + 1], row[x * bpp + 2]
            if (
                abs(r - want[0]) <= tolerance
                and abs(g - want[1]) <= tolerance
                and abs(b - want[2]) <= tolerance
            ):
                found.add((x, y))
    return found


def shape_heights(pixels: set[tuple[int, int]]) -> list[int]:
    """The height in pixels of each 8-connected shape ``pixels`` form, tallest first."""
    left = set(pixels)
    heights = []
    while left:
        stack = [left.pop()]
        top = bottom = stack[0][1]
        while stack:
            x, y = stack.pop()
            top, bottom = min(top, y), max(bottom, y)
            for dx in (-1, 0, 1):
                for dy in (-1, 0, 1):
                    near = (x + dx, y + dy)
                    if near in left:
                        left.remove(near)
                        stack.append(near)
        heights.append(bottom - top + 1)
    return sorted(heights, reverse=True)
