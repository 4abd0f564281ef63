#!/usr/bin/env python3
"""Writes torch.save checkpoints (and their expected contents) for tests/io/test_pth.cpp and
tests/models/test_pretrained.cpp.

usage: make_pth.py io OUT_DIR
       make_pth.py golden REFERENCE.safetensors OUT_DIR
       make_pth.py timm OUT_DIR

io      mixed.pth (a run checkpoint: `model` of several dtypes and views sharing storages, an argparse
        Namespace under `args`, `epoch`, an AdamW `optimizer` state), expect.safetensors (its `model` as
        contiguous tensors), proto4.pth (the same saved with pickle protocol 4), top.pth (a bare state dict),
        legacy.pth (the pre-1.6 format), and broken archives: no_pkl.pth, bad_opcode.pth, underflow.pth,
        truncated_pkl.pth, missing_storage.pth, short_storage.pth, view_outside.pth, and deep.pth (a
        100000-deep nest of lists).
golden  ref.pth (the reference SemAIM model's parameters as `model` of a reference checkpoint), ref_module.pth
        (`module.`-prefixed, with MAE decoder keys), ref_no_norm.pth (without norm.*).
timm    timm32.safetensors / timm64.safetensors (timm vit_tiny_patch16_224 at 32 and 64 pixels, weights moved
        off their init) and timm_expect.safetensors: `input`, `features32` (timm32's forward_features) and
        `features64to32` (timm64's weights through timm's checkpoint_filter_fn into the 32-pixel model).
Exit code 3 when timm is not importable (the timm test skips then)."""
import argparse
import collections
import io
import pathlib
import sys
import zipfile

import numpy as np
import torch
from safetensors.torch import load_file, save_file


def run_args() -> argparse.Namespace:
    # What the reference's main_pretrain.py keeps under `args`: plain values plus non-builtin objects.
    return argparse.Namespace(model="aim_base", lr=1.5e-4, input_size=224, norm_pix_loss=True,
                              output_dir=pathlib.PosixPath("/tmp/out"), seed_value=np.float64(2.5),
                              device=torch.device("cpu"), dtype=torch.float32)


def rewrite(src: pathlib.Path, dst: pathlib.Path, change) -> None:
    """Copies a zip archive record by record; change(name, data) returns new bytes or None to drop it."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = change(info.filename, zin.read(info.filename))
            if data is not None:
                zout.writestr(info.filename, data)


def record(name: str, suffix: str) -> bool:
    return name.endswith("/" + suffix)


class OutsideView:
    """Pickles as a tensor view reaching past its 6-element storage."""

    def __init__(self):
        self.storage = torch.arange(6.0).untyped_storage()

    def __reduce__(self):
        typed = torch.storage.TypedStorage(wrap_storage=self.storage, dtype=torch.float32, _internal=True)
        return torch._utils._rebuild_tensor_v2, (typed, 2, (3, 2), (2, 1), False, collections.OrderedDict())


def make_io(out: pathlib.Path) -> None:
    base = torch.arange(24, dtype=torch.float32) * 0.5 - 3
    model = collections.OrderedDict()
    model["f32"] = torch.randn(2, 3)
    model["f16"] = torch.randn(4).half()
    model["bf16"] = torch.randn(3, 2).bfloat16()
    model["f64"] = torch.randn(2, 2).double()
    model["i64"] = torch.tensor([-(2**40), 7, 0])
    model["i32"] = torch.tensor([[1, -2], [3, 4]], dtype=torch.int32)
    model["u8"] = torch.tensor([0, 255, 17], dtype=torch.uint8)
    model["bool"] = torch.tensor([True, False, True])
    model["whole"] = base
    model["transposed"] = base[:12].view(3, 4).t()  # non-contiguous view of the shared storage
    model["offset"] = base[5:11].view(2, 3)  # storage offset 5
    model["strided"] = base[1::4]  # stride 4
    model["scalar"] = torch.tensor(3.25)
    model["empty"] = torch.zeros(0, 3)
    param = torch.nn.Parameter(torch.randn(3))
    opt = torch.optim.AdamW([param], lr=1e-3)
    param.sum().backward()
    opt.step()
    ckpt = {"model": model, "args": run_args(), "epoch": 3, "optimizer": opt.state_dict(),
            "scaler": {"scale": 65536.0, "growth_tracker": 2}, "note": b"\x00bytes"}
    torch.save(ckpt, out / "mixed.pth")
    torch.save(ckpt, out / "proto4.pth", pickle_protocol=4)
    save_file({k: v.clone().contiguous() for k, v in model.items()}, str(out / "expect.safetensors"))
    torch.save(collections.OrderedDict(a=torch.ones(2), b=torch.zeros(1, dtype=torch.int64)), out / "top.pth")
    torch.save({"model": model}, out / "legacy.pth", _use_new_zipfile_serialization=False)

    mixed = out / "mixed.pth"
    with zipfile.ZipFile(mixed) as z:
        pkl = next(n for n in z.namelist() if record(n, "data.pkl"))
        storages = sorted(n for n in z.namelist() if "/data/" in n)
    rewrite(mixed, out / "no_pkl.pth", lambda n, d: None if n == pkl else d)
    rewrite(mixed, out / "bad_opcode.pth", lambda n, d: b"\x80\x02}q\x00\xff." if n == pkl else d)
    rewrite(mixed, out / "underflow.pth", lambda n, d: b"\x80\x02X\x01\x00\x00\x00as." if n == pkl else d)
    rewrite(mixed, out / "truncated_pkl.pth", lambda n, d: d[: len(d) // 2] if n == pkl else d)
    rewrite(mixed, out / "missing_storage.pth", lambda n, d: None if n == storages[0] else d)
    rewrite(mixed, out / "short_storage.pth", lambda n, d: d[:3] if n == storages[0] else d)
    torch.save({"model": {"bad": OutsideView()}}, out / "view_outside.pth")
    depth = 100000  # lists nested this deep: releasing them must not recurse
    deep = b"\x80\x02" + b"]" * depth + b"a" * (depth - 1) + b"."
    rewrite(mixed, out / "deep.pth", lambda n, d: deep if n == pkl else d)


def make_golden(reference: str, out: pathlib.Path) -> None:
    params = collections.OrderedDict(
        (k[len("param."):], v) for k, v in load_file(reference).items() if k.startswith("param."))
    torch.save({"model": params, "args": run_args(), "epoch": 1}, out / "ref.pth")
    mae = collections.OrderedDict(("module." + k, v) for k, v in params.items())
    mae["module.mask_token"] = torch.zeros(1, 1, 32)
    mae["module.decoder_embed.weight"] = torch.randn(32, 64)
    mae["module.decoder_pos_embed"] = torch.zeros(1, 197, 32)
    mae["module.decoder_blocks.0.norm1.weight"] = torch.ones(32)
    torch.save({"model": mae, "args": run_args(), "epoch": 1}, out / "ref_module.pth")
    no_norm = collections.OrderedDict((k, v) for k, v in params.items() if not k.startswith("norm."))
    torch.save({"model": no_norm, "epoch": 1}, out / "ref_no_norm.pth")


def make_timm(out: pathlib.Path) -> int:
    try:
        import timm
        from timm.models.vision_transformer import checkpoint_filter_fn
    except ImportError as e:  # pragma: no cover - depends on the venv
        print(f"timm is not available: {e}")
        return 3
    torch.manual_seed(0)
    models = {}
    for size in (32, 64):
        m = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=size).eval()
        with torch.no_grad():
            for p in m.parameters():
                p.add_(torch.randn_like(p) * 0.05)
        models[size] = m
        save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(out / f"timm{size}.safetensors"))
    x = torch.randn(2, 3, 32, 32)
    resampled = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32).eval()
    resampled.load_state_dict(checkpoint_filter_fn(models[64].state_dict(), resampled))
    with torch.no_grad():
        expect = {"input": x, "features32": models[32].forward_features(x),
                  "features64to32": resampled.forward_features(x)}
    save_file(expect, str(out / "timm_expect.safetensors"))
    return 0


def main() -> int:
    mode = sys.argv[1]
    if mode == "io":
        make_io(pathlib.Path(sys.argv[2]))
    elif mode == "golden":
        make_golden(sys.argv[2], pathlib.Path(sys.argv[3]))
    elif mode == "timm":
        return make_timm(pathlib.Path(sys.argv[2]))
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
