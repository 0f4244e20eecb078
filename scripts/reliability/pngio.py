"""PNG in and out with the standard library only (zlib, struct), for the reliability scripts.

Writes 8-bit RGB test images with deterministic content, and reads back what Kiln writes
(8-bit grey, grey+alpha, RGB or RGBA, not interlaced), checking every chunk's CRC and that the
file ends with IEND: a truncated or torn file fails to decode instead of reading as an image.
"""

import struct
import zlib

SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}


class PngError(Exception):
    pass


def _chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_rgb(width, height, pixels):
    """An 8-bit RGB PNG of `pixels` (bytes, row-major RGB), every row unfiltered."""
    stride = width * 3
    raw = b"".join(b"\x00" + pixels[y * stride:(y + 1) * stride] for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 9)) + _chunk(b"IEND", b"")


def test_image(width, height, seed):
    """Deterministic RGB content: gradients, a checker of two frequencies and a few hard edges,
    so that tile seams, borders and flat areas all show up in a comparison."""
    out = bytearray(width * height * 3)
    i = 0
    for y in range(height):
        for x in range(width):
            checker = 40 if ((x // 6) + (y // 6) + seed) % 2 else 0
            fine = 24 if ((x // 2) + (y // 3)) % 2 else 0
            edge = 90 if (x * 3 + y * 2 + seed * 11) % 97 < 30 else 0
            out[i] = (x * 255 // max(width - 1, 1) + checker + seed * 17) % 256
            out[i + 1] = (y * 255 // max(height - 1, 1) + fine + edge) % 256
            out[i + 2] = ((x + y) * 2 + checker + edge + seed * 29) % 256
            i += 3
    return bytes(out)


def chunks(data):
    """Every chunk as (kind, body), checking CRCs and that IEND ends the file."""
    if not data.startswith(SIGNATURE):
        raise PngError("not a PNG signature")
    pos, found = len(SIGNATURE), []
    while True:
        if pos + 8 > len(data):
            raise PngError(f"truncated at byte {pos}: no IEND")
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        crc_at = pos + 8 + length
        if crc_at + 4 > len(data):
            raise PngError(f"truncated inside chunk {kind!r} at byte {pos}")
        (crc,) = struct.unpack(">I", data[crc_at:crc_at + 4])
        if zlib.crc32(kind + body) & 0xFFFFFFFF != crc:
            raise PngError(f"chunk {kind!r} at byte {pos} has a bad CRC")
        found.append((kind, body))
        pos = crc_at + 4
        if kind == b"IEND":
            if pos != len(data):
                raise PngError(f"{len(data) - pos} bytes after IEND")
            return found


def idat_stream(data):
    """(IHDR fields, the concatenated compressed IDAT data): two files with equal streams hold
    equal pixels, so a comparison can skip decoding when they match."""
    found = chunks(data)
    if not found or found[0][0] != b"IHDR":
        raise PngError("IHDR is not the first chunk")
    width, height, depth, color, _compression, _filter, interlace = struct.unpack(">IIBBBBB", found[0][1])
    if depth != 8 or color not in CHANNELS or interlace != 0:
        raise PngError(f"unsupported PNG: depth {depth}, colour type {color}, interlace {interlace}")
    return (width, height, CHANNELS[color]), b"".join(body for kind, body in found if kind == b"IDAT")


def decode(data):
    """(width, height, channels, pixels as bytearray), after every check above."""
    (width, height, channels), stream = idat_stream(data)
    try:
        raw = zlib.decompress(stream)
    except zlib.error as error:
        raise PngError(f"IDAT does not decompress: {error}") from None
    stride = width * channels
    if len(raw) != height * (stride + 1):
        raise PngError(f"IDAT holds {len(raw)} bytes, not {height * (stride + 1)}")
    out = bytearray(height * stride)
    prev = bytearray(stride)
    bpp = channels
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if kind == 0:
            pass
        elif kind == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif kind == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, prev))
        elif kind == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif kind == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        else:
            raise PngError(f"row {y} has filter type {kind}")
        out[y * stride:(y + 1) * stride] = line
        prev = line
    return width, height, channels, out


def max_difference(a, b):
    """The largest per-channel difference between two decoded images, in 8-bit steps; None
    when their sizes or channel counts differ."""
    if a[:3] != b[:3]:
        return None
    return max((abs(x - y) for x, y in zip(a[3], b[3])), default=0)
