"""Seed corpus of fuzz_label_map (fuzz/make_corpus.sh): label PNGs of every mode the reader accepts (8-bit gray,
1-bit gray, palette at 8 bits and fewer, with a tRNS chunk) and rejects (RGB, 16-bit, truncated, CRC-broken), plus
one real fmnist-seg map when that dataset is given.
    python fuzz/make_label_maps.py OUT_DIR [FMNIST_SEG_DIR]
"""
import pathlib
import sys

import numpy as np
from PIL import Image

out = pathlib.Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(0)
labels = rng.integers(0, 151, size=(12, 17), dtype=np.uint8)
labels[0, :3] = 255

Image.fromarray(labels, "L").save(out / "gray8.png")
p = Image.fromarray(labels, "P")
p.putpalette([c for i in range(256) for c in (i, 255 - i, (7 * i) % 256)])
p.save(out / "palette.png")
p.save(out / "palette-transparent.png", transparency=3)
Image.fromarray((labels % 2).astype(bool)).save(out / "gray1.png")
Image.fromarray(labels % 4, "P").save(out / "palette2.png", bits=2)
Image.fromarray(labels % 16, "P").save(out / "palette4.png", bits=4)
Image.fromarray(np.zeros((1, 1), np.uint8), "L").save(out / "one-pixel.png")
Image.fromarray(np.stack([labels] * 3, -1), "RGB").save(out / "broken-rgb.png")
Image.fromarray(labels.astype(np.uint16) * 300).save(out / "broken-gray16.png")
data = (out / "gray8.png").read_bytes()
(out / "broken-truncated.png").write_bytes(data[: len(data) // 2])
bad_crc = bytearray(data)
bad_crc[29] ^= 0xFF  # the IHDR chunk's CRC
(out / "broken-crc.png").write_bytes(bytes(bad_crc))

if len(sys.argv) > 2:
    maps = sorted(pathlib.Path(sys.argv[2]).glob("annotations/training/*.png"))
    if maps:
        (out / "fmnist-seg.png").write_bytes(maps[0].read_bytes())
