#!/usr/bin/env bash
# Installs everything semaim's build, tests and main job need, idempotently: Debian packages and the
# pinned torch wheel (LibTorch) in a per-user virtual environment outside the clone.
# Quick when nothing is missing. Prints what it installed. Sourcing-safe: exports SEMAIM_VENV.
set -euo pipefail

TORCH_VERSION="2.11.0"
TORCHVISION_VERSION="0.26.0"
TIMM_VERSION="1.0.31"
# The event reader the TensorBoard tests check semaim's event files with (tests/io/read_tb_events.py).
TENSORBOARD_VERSION="2.21.0"
# The COCO reference the detection tests hold semaim's masks and evaluation to; tools/make_detdata.py uses it.
PYCOCOTOOLS_VERSION="2.0.11"
OPEN_CLIP_VERSION="3.3.0"  # open_clip_torch: the CLIP teacher tests build their models with it
# Wheels whose bundled photographs seed the sample image corpus (tools/make_corpus.py); never installed.
PHOTO_WHEELS=("scikit-image==0.26.0" "scikit-learn==1.9.1")
CORPUS_VERSION="v1"
SEGDATA_VERSION="v1"  # tools/make_segdata.py: bump when its output changes
DETDATA_VERSION="v1"  # tools/make_detdata.py: bump when its output changes
: "${SEMAIM_VENV:=${XDG_CACHE_HOME:-$HOME/.cache}/semaim/venv-torch-${TORCH_VERSION}}"
export SEMAIM_VENV

APT_PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config
  libopencv-dev libyaml-cpp-dev libspdlog-dev nlohmann-json3-dev libcli11-dev
  libopenmpi-dev openmpi-bin libgtest-dev libgmock-dev zlib1g-dev
  libjpeg62-turbo-dev libpng-dev dataset-fashion-mnist python3-venv
  protobuf-compiler libprotobuf-dev
  clang libclang-rt-14-dev libomp-14-dev llvm
)

installed=()

missing=()
for p in "${APT_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]})); then
  echo "[setup] installing Debian packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  installed+=("apt: ${missing[*]}")
fi

PY="${SEMAIM_PYTHON:-python3}"
# A new pin changes the stamp's name, so an existing venv gets the new packages (pip skips what it has).
stamp="$SEMAIM_VENV/.semaim-ok-${TORCH_VERSION}-${TORCHVISION_VERSION}-${TIMM_VERSION}-tb${TENSORBOARD_VERSION}-coco${PYCOCOTOOLS_VERSION}-oc${OPEN_CLIP_VERSION}"
if [ ! -f "$stamp" ]; then
  echo "[setup] preparing the torch ${TORCH_VERSION} venv at $SEMAIM_VENV (about 3 GB when new, once per machine)"
  mkdir -p "$(dirname "$SEMAIM_VENV")"
  [ -x "$SEMAIM_VENV/bin/python" ] || "$PY" -m venv "$SEMAIM_VENV"
  "$SEMAIM_VENV/bin/python" -m pip install -q --upgrade pip
  "$SEMAIM_VENV/bin/python" -m pip install -q "torch==${TORCH_VERSION}" "torchvision==${TORCHVISION_VERSION}" \
    "timm==${TIMM_VERSION}" "tensorboard==${TENSORBOARD_VERSION}" "pycocotools==${PYCOCOTOOLS_VERSION}" safetensors numpy pyyaml \
    "open_clip_torch==${OPEN_CLIP_VERSION}"
  "$SEMAIM_VENV/bin/python" -c "import torch, timm, tensorboard, pycocotools, open_clip; assert torch.__version__.startswith('${TORCH_VERSION}')"
  rm -f "$SEMAIM_VENV"/.semaim-ok-*
  touch "$stamp"
  installed+=("venv: torch ${TORCH_VERSION}, torchvision ${TORCHVISION_VERSION}, timm ${TIMM_VERSION}, tensorboard ${TENSORBOARD_VERSION}, pycocotools ${PYCOCOTOOLS_VERSION}, open_clip ${OPEN_CLIP_VERSION}")
fi

# The sample image corpus (ImageNet layout, ~2000 JPEGs from real photographs) for tests and benchmarks.
: "${SEMAIM_CORPUS:=${XDG_CACHE_HOME:-$HOME/.cache}/semaim/corpus-${CORPUS_VERSION}}"
export SEMAIM_CORPUS
if [ ! -f "$SEMAIM_CORPUS/.complete" ]; then
  wheels="$(dirname "$SEMAIM_CORPUS")/wheels"
  mkdir -p "$wheels"
  for w in "${PHOTO_WHEELS[@]}"; do
    stem="${w%%==*}"; stem="${stem//-/_}-${w##*==}-"
    ls "$wheels/$stem"*.whl >/dev/null 2>&1 ||
      "$SEMAIM_VENV/bin/python" -m pip download -q --no-deps --only-binary=:all: -d "$wheels" "$w"
  done
  echo "[setup] building the sample image corpus at $SEMAIM_CORPUS (about 20 s, once per machine)"
  "$SEMAIM_VENV/bin/python" "$(dirname "${BASH_SOURCE[0]}")/make_corpus.py" --wheels "$wheels" --out "$SEMAIM_CORPUS"
  installed+=("corpus: $SEMAIM_CORPUS")
fi

# fmnist-seg: the small semantic-segmentation dataset (ADE20K layout) for tests and the segmentation main job.
: "${SEMAIM_SEGDATA:=${XDG_CACHE_HOME:-$HOME/.cache}/semaim/fmnist-seg-${SEGDATA_VERSION}}"
export SEMAIM_SEGDATA
if [ ! -f "$SEMAIM_SEGDATA/.complete" ]; then
  echo "[setup] building the fmnist-seg dataset at $SEMAIM_SEGDATA (a few seconds, once per machine)"
  "$SEMAIM_VENV/bin/python" "$(dirname "${BASH_SOURCE[0]}")/make_segdata.py" --corpus "$SEMAIM_CORPUS" \
    --out "$SEMAIM_SEGDATA"
  installed+=("segmentation data: $SEMAIM_SEGDATA")
fi

# fmnist-det: the small detection / instance-segmentation dataset (COCO layout) for tests and the detection job.
: "${SEMAIM_DETDATA:=${XDG_CACHE_HOME:-$HOME/.cache}/semaim/fmnist-det-${DETDATA_VERSION}}"
export SEMAIM_DETDATA
if [ ! -f "$SEMAIM_DETDATA/.complete" ]; then
  echo "[setup] building the fmnist-det dataset at $SEMAIM_DETDATA (about 30 s, once per machine)"
  "$SEMAIM_VENV/bin/python" "$(dirname "${BASH_SOURCE[0]}")/make_detdata.py" --corpus "$SEMAIM_CORPUS" \
    --out "$SEMAIM_DETDATA"
  installed+=("detection data: $SEMAIM_DETDATA")
fi

if ((${#installed[@]})); then
  for line in "${installed[@]}"; do echo "[setup] installed $line"; done
else
  echo "[setup] nothing missing (venv: $SEMAIM_VENV)"
fi
