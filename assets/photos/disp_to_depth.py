#!/usr/bin/env python3
"""Convert the Middlebury 2014 motorcycle disparity (motorcycle_disp.npz, float32, inf = unknown)
into a 16-bit grayscale PNG of depth in millimetres (0 = unknown). Python standard library only.

    Z[mm] = f * B / (d + doffs),  f = 994.978 px, B = 193.001 mm, doffs = 31.086 px

usage: disp_to_depth.py motorcycle_disp.npz motorcycle_left_depth.png
"""
import ast, io, math, struct, sys, zipfile, zlib

F, B, DOFFS = 994.978, 193.001, 31.086


def read_npy(raw):
    assert raw[:6] == b"\x93NUMPY", "not a .npy file"
    major = raw[6]
    if major == 1:
        (hlen,), start = struct.unpack("<H", raw[8:10]), 10
    else:
        (hlen,), start = struct.unpack("<I", raw[8:12]), 12
    header = ast.literal_eval(raw[start:start + hlen].decode("latin1"))
    assert header["descr"] == "<f4" and not header["fortran_order"], header
    h, w = header["shape"]
    data = struct.unpack("<%df" % (h * w), raw[start + hlen:start + hlen + 4 * h * w])
    return w, h, data


def write_png16(path, w, h, values):
    rows = bytearray()
    for y in range(h):
        rows.append(0)  # filter type: none
        rows += struct.pack(">%dH" % w, *values[y * w:(y + 1) * w])

    def chunk(tag, body):
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n"
    png += chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 0, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(bytes(rows), 9))
    png += chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(png)


def main():
    src, dst = sys.argv[1], sys.argv[2]
    with zipfile.ZipFile(src) as z:
        w, h, disp = read_npy(z.read(z.namelist()[0]))
    depth = []
    for d in disp:
        if math.isfinite(d) and d + DOFFS > 0:
            depth.append(max(1, min(65535, round(F * B / (d + DOFFS)))))
        else:
            depth.append(0)
    write_png16(dst, w, h, depth)
    known = [v for v in depth if v]
    print(f"{w}x{h}, known {len(known)}/{len(depth)}, depth {min(known)}..{max(known)} mm")


if __name__ == "__main__":
    main()
