#!/usr/bin/env python3
"""Reference outputs of timm's RandAugment ops (timm.data.auto_augment.AugmentOp on PIL images) for
tests/data/test_randaugment.cpp.

usage: timm_randaugment_reference.py CASES OPS_OUT

CASES has one op per line: `<op> <magnitude> <negate 0|1> <bilinear|bicubic> <fill c0,c1,..> <in.raw> <H> <W>
<C> <out.raw>`. Each input is H*W*C bytes (HWC, C = 1 gives an 'L' image, C = 3 an 'RGB' one); the op runs as
timm runs it in RandAugment with prob 1 and no magnitude noise, its sign fixed by replacing timm's
_randomly_negate, the level not clipped (magnitude_max 100), and its output bytes are written to out.raw.
OPS_OUT gets two lines: timm's _RAND_TRANSFORMS and _RAND_INCREASING_TRANSFORMS, space-separated.
Exit code 3 when timm or PIL is not importable (the C++ test skips then)."""
import sys

try:
    import numpy as np
    from PIL import Image
    import timm.data.auto_augment as aa
except ImportError as e:  # pragma: no cover - depends on the venv
    print(f"timm is not available: {e}")
    sys.exit(3)


def run_case(fields: list) -> None:
    name, magnitude, negate, interp, fill, src, h, w, c, dst = fields
    h, w, c = int(h), int(w), int(c)
    pixels = np.fromfile(src, dtype=np.uint8).reshape(h, w, c)
    img = Image.fromarray(np.ascontiguousarray(pixels[:, :, 0]) if c == 1 else pixels)  # 'L' or 'RGB'
    resample = Image.Resampling.BILINEAR if interp == "bilinear" else Image.Resampling.BICUBIC
    hparams = dict(translate_const=100, img_mean=tuple(int(v) for v in fill.split(",")),
                   interpolation=resample, magnitude_max=100)
    aa._randomly_negate = (lambda v: -v) if negate == "1" else (lambda v: v)
    op = aa.AugmentOp(name, prob=1.0, magnitude=float(magnitude), hparams=hparams)
    out = np.asarray(op(img), dtype=np.uint8).reshape(h, w, c)
    out.tofile(dst)


def main() -> int:
    cases_path, ops_path = sys.argv[1], sys.argv[2]
    with open(cases_path) as f:
        for line in f:
            if line.strip():
                run_case(line.split())
    with open(ops_path, "w") as f:
        f.write(" ".join(aa._RAND_TRANSFORMS) + "\n")
        f.write(" ".join(aa._RAND_INCREASING_TRANSFORMS) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
