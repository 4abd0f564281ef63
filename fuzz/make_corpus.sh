#!/usr/bin/env bash
# Regenerates the seed corpus fuzz/corpus/<target>/ (docs/reliability.md#fuzzing): small real inputs of every
# parser plus a few broken ones. Needs tools/setup.sh's venv and corpus, and a built semaim binary (build/semaim,
# or $SEMAIM_BIN) for the tiny run whose checkpoint seeds fuzz_checkpoint.
#   fuzz/make_corpus.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/tools/setup.sh" >/dev/null
py="$SEMAIM_VENV/bin/python"
semaim="${SEMAIM_BIN:-$root/build/semaim}"
out="$root/fuzz/corpus"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
rm -rf "$out"
mkdir -p "$out"/{config,idx,safetensors,checkpoint,list,image,pth,label_map,coco_json}

# config: every shipped config resolved by `semaim config` (self-contained), the raw files (their _base_
# paths point at nothing from the fuzzer's directory), and broken ones.
for f in "$root"/configs/pretrain/*.yaml "$root"/configs/finetune/*.yaml; do
  name="$(basename "$f" .yaml)"
  "$semaim" config "$f" >"$out/config/resolved-$name.yaml"
done
cp "$root/configs/pretrain/aim-fmnist-p4_1xb128-semantic_fmnist.yaml" "$out/config/raw-with-base.yaml"
cp "$root/fuzz/checkpoint_run.yaml" "$out/config/checkpoint-run.yaml"
printf 'pretrain:\n  epochs: 3\n  epochs: 4\n' >"$out/config/broken-duplicate-key.yaml"
printf 'pretrain:\n  base_lr: .nan\nmodel: {name: aim_tiny_patch16, depth: 12, decoder_depth: 5}\n' \
  >"$out/config/broken-nan-and-depth.yaml"
printf '_base_: config.yaml\nrun: {name: "../x", seed: 010}\n' >"$out/config/broken-self-base.yaml"
printf 'data:\n  mean: [0.5, 0.5\n' >"$out/config/broken-unclosed.yaml"

# idx: first byte 0 = the image file, 1 = the label file (fuzz/idx.cpp); 100 real Fashion-MNIST samples.
"$py" - "$out/idx" <<'EOF'
import gzip, sys, pathlib
out = pathlib.Path(sys.argv[1])
root = pathlib.Path("/usr/share/datasets/fashion-mnist")
n = 100
img = gzip.open(root / "train-images-idx3-ubyte.gz").read()
lab = gzip.open(root / "train-labels-idx1-ubyte.gz").read()
images = img[:4] + n.to_bytes(4, "big") + img[8:16] + img[16:16 + n * 784]
labels = lab[:4] + n.to_bytes(4, "big") + lab[8:8 + n]
(out / "images-100.gz").write_bytes(b"\x00" + gzip.compress(images, 9, mtime=0))
(out / "labels-100").write_bytes(b"\x01" + labels)
(out / "labels-100.gz").write_bytes(b"\x01" + gzip.compress(labels, 9, mtime=0))
(out / "images-10-raw").write_bytes(b"\x00" + img[:4] + (10).to_bytes(4, "big") + img[8:16] + img[16:16 + 7840])
(out / "broken-images-truncated.gz").write_bytes(b"\x00" + gzip.compress(images, 9, mtime=0)[:3000])
(out / "broken-labels-count").write_bytes(b"\x01" + lab[:4] + (99).to_bytes(4, "big") + lab[8:8 + 99])
EOF

# checkpoint: a real 1-step run of fuzz/checkpoint_run.yaml; first byte 0 manifest, 1 weights, 2 state,
# 3 metrics.jsonl, 4 config.yaml (fuzz/checkpoint.cpp).
"$semaim" pretrain "$root/fuzz/checkpoint_run.yaml" --quiet --set run.output_dir="$tmp/runs" \
  --set run.name=seed >/dev/null
ck="$tmp/runs/seed/checkpoints"
manifest="$(ls "$ck"/*.json | head -1)"
base="${manifest%.json}"
{ printf '\x00'; cat "$manifest"; } >"$out/checkpoint/manifest.json"
{ printf '\x01'; cat "$base.weights.safetensors"; } >"$out/checkpoint/weights"
{ printf '\x02'; cat "$base.state.safetensors"; } >"$out/checkpoint/state"
{ printf '\x03'; cat "$tmp/runs/seed/metrics.jsonl"; printf '{"step": 2, "loss": 0.5}\n{"step": 3, "lo'; } \
  >"$out/checkpoint/metrics-torn.jsonl"
{ printf '\x04'; cat "$tmp/runs/seed/config.yaml"; } >"$out/checkpoint/config.yaml"
printf '\x00{"step": "7"}' >"$out/checkpoint/broken-manifest-step-string.json"
printf '\x04pretrain: {base_lr: [1, 2]}\n' >"$out/checkpoint/broken-config-type.yaml"
{ printf '\x02'; head -c 4000 "$base.state.safetensors"; } >"$out/checkpoint/broken-state-truncated"

# safetensors: the run's weights file and small files of every dtype, plus broken ones.
cp "$base.weights.safetensors" "$out/safetensors/checkpoint-weights.safetensors"
"$py" - "$out/safetensors" <<'EOF'
import sys, pathlib, torch
from safetensors.torch import save_file
out = pathlib.Path(sys.argv[1])
t = {"f32": torch.arange(6, dtype=torch.float32).reshape(2, 3), "f16": torch.ones(3, dtype=torch.float16),
     "bf16": torch.zeros(2, dtype=torch.bfloat16), "f64": torch.tensor([1.5], dtype=torch.float64),
     "i64": torch.tensor([-1, 2]), "i32": torch.tensor([3], dtype=torch.int32),
     "i16": torch.tensor([4], dtype=torch.int16), "i8": torch.tensor([-5], dtype=torch.int8),
     "u8": torch.tensor([255], dtype=torch.uint8), "bool": torch.tensor([True, False]),
     "scalar": torch.tensor(2.0), "empty": torch.zeros(0, 4)}
save_file(t, out / "dtypes.safetensors", metadata={"format": "pt", "config": "run:\n  seed: 0\n"})
data = (out / "dtypes.safetensors").read_bytes()
(out / "broken-truncated.safetensors").write_bytes(data[:len(data) - 7])
(out / "broken-header-length.safetensors").write_bytes((10**12).to_bytes(8, "little") + data[8:64])
(out / "broken-bool-byte.safetensors").write_bytes(
    b"\x30\x00\x00\x00\x00\x00\x00\x00" + b'{"b":{"dtype":"BOOL","shape":[1],"data_offsets":[0,1]}}'[:48] + b"\x02")
EOF

# list: list files as image_list reads them (the corpus's, cut short), plus broken ones.
head -5 "$SEMAIM_CORPUS/train.txt" >"$out/list/train.txt"
printf '# comment\n\n  a b/c d.JPEG 3\r\n/abs/path.png\t7\n' >"$out/list/spaces-tabs-crlf.txt"
printf 'x.jpg -1\n' >"$out/list/broken-negative.txt"
printf 'x.jpg\n' >"$out/list/broken-no-label.txt"
printf 'x.jpg 99999999999999999999\n' >"$out/list/broken-overflow.txt"

# image: small JPEGs (baseline, progressive, 4:4:4, gray, CMYK, restart markers) and PNG / BMP from a corpus
# photograph, plus broken ones.
"$py" - "$out/image" "$SEMAIM_CORPUS/train/astronaut/astronaut_00000.JPEG" <<'EOF'
import sys, pathlib
from PIL import Image
out = pathlib.Path(sys.argv[1])
src = Image.open(sys.argv[2]).convert("RGB").resize((40, 30))
src.save(out / "rgb.jpg", quality=70)
src.save(out / "progressive.jpg", quality=60, progressive=True)
src.save(out / "444.jpg", quality=60, subsampling=0)
src.save(out / "restart.jpg", quality=60, restart_marker_blocks=1)
src.convert("L").save(out / "gray.jpg", quality=60)
src.convert("CMYK").save(out / "cmyk.jpg", quality=60)
src.save(out / "rgb.png")
src.convert("RGBA").save(out / "rgba.png")
src.convert("L").save(out / "gray.png")
src.convert("P").save(out / "palette.png")
src.convert("I;16").save(out / "gray16.png")
src.resize((8, 6)).save(out / "small.bmp")
jpg = (out / "rgb.jpg").read_bytes()
(out / "broken-truncated.jpg").write_bytes(jpg[: len(jpg) // 2])
sof = jpg.index(b"\xff\xc0")
huge = bytearray(jpg)
huge[sof + 5:sof + 9] = (65500).to_bytes(2, "big") * 2  # height, width
(out / "broken-huge-header.jpg").write_bytes(bytes(huge))
png = (out / "rgb.png").read_bytes()
(out / "broken-truncated.png").write_bytes(png[: len(png) // 2])
EOF

# pth: the torch.save files (and broken archives) of the pth unit tests, without the 200 KB deep nest.
mkdir -p "$tmp/pth"
"$py" "$root/tests/io/make_pth.py" io "$tmp/pth" >/dev/null
for f in "$tmp"/pth/*.pth; do
  [ "$(basename "$f")" = deep.pth ] || cp "$f" "$out/pth/"
done

# label_map: small label PNGs of every kind the reader accepts or rejects and one fmnist-seg map.
"$py" "$root/fuzz/make_label_maps.py" "$out/label_map" "$SEMAIM_SEGDATA"

# coco_json: small instances files (polygons, RLE, crowd regions), broken ones, and fmnist-det's first images.
"$py" "$root/fuzz/make_coco_json_corpus.py" "$out/coco_json" "$SEMAIM_DETDATA"

du -sh "$out"
