#!/usr/bin/env python3
"""Writes the committed seed corpora of the fuzz targets from the captured test vectors.

Run from anywhere: python3 fuzz/make_seeds.py. Each packet under
crates/facteur-codec/tests/vectors/*.txt (smaller than 4 KiB) becomes one seed of the decode
target of its version, and one seed of `roundtrip` whose first byte selects that version.
"""
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent
VECTORS = ROOT.parent / "crates/facteur-codec/tests/vectors"
TARGET = {"3.1": ("decode_v3_1", 0), "3.1.1": ("decode_v3_1_1", 1), "5.0": ("decode_v5", 2)}

seen = set()
for path in sorted(VECTORS.glob("*.txt")):
    for line in path.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        _direction, version, hexbytes = line.split()
        packet = bytes.fromhex(hexbytes)
        if len(packet) > 4096 or (version, packet) in seen:
            continue
        seen.add((version, packet))
        target, selector = TARGET[version]
        n = len(seen)
        for name, data in ((target, packet), ("roundtrip", bytes([selector]) + packet)):
            out = ROOT / "corpus" / name
            out.mkdir(parents=True, exist_ok=True)
            (out / f"seed-{n:04}").write_bytes(data)
print(f"{len(seen)} distinct packets written as seeds")
