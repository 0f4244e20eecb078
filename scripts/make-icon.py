#!/usr/bin/env python3
"""Draws Kiln's app icon (src-tauri/icons/icon.png, ui/public/favicon.png): a kiln's arch with a
flame inside, on a dark rounded square. Pure Python (zlib + struct), so anyone can redraw it."""
import math, struct, zlib, sys, os

def draw(size):
    px = []
    c = size / 2
    for y in range(size):
        row = []
        for x in range(size):
            u, v = (x + 0.5) / size, (y + 0.5) / size
            # rounded square background
            r = 0.2
            dx, dy = max(abs(u - 0.5) - (0.5 - r), 0), max(abs(v - 0.5) - (0.5 - r), 0)
            if math.hypot(dx, dy) > r:
                row.append((0, 0, 0, 0)); continue
            col = (20, 23, 28, 255)
            # kiln arch: a half disc on a rectangle, hollow
            ax, ay, aw = 0.5, 0.50, 0.30
            def in_arch(w, top, bottom):
                if v >= top and v <= bottom and abs(u - ax) <= w: return True
                return v < top and math.hypot(u - ax, v - top) <= w
            if in_arch(aw, ay, 0.80) and not in_arch(aw - 0.07, ay, 0.80):
                col = (232, 112, 42, 255)
            # base line
            if 0.80 <= v <= 0.86 and abs(u - ax) <= aw + 0.06:
                col = (232, 112, 42, 255)
            # flame: a teardrop inside the arch
            fy = (v - 0.46) / 0.30
            if 0 <= fy <= 1:
                half = 0.12 * math.sin(math.pi * fy ** 1.8)
                if abs(u - ax) <= half:
                    col = (255, 179, 71, 255) if abs(u - ax) > half * 0.5 or fy < 0.55 else (255, 226, 150, 255)
            row.append(col)
        px.append(row)
    return px

def png(px):
    h, w = len(px), len(px[0])
    raw = b"".join(b"\x00" + bytes(sum(row, ())) for row in (tuple(p for p in r) for r in px))
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))

if __name__ == "__main__":
    root = os.path.join(os.path.dirname(__file__), "..")
    for path, size in [("src-tauri/icons/icon.png", 256), ("ui/public/favicon.png", 64)]:
        full = os.path.join(root, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        open(full, "wb").write(png(draw(size)))
        print("wrote", path)
