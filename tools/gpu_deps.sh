#!/usr/bin/env bash
# Makes third_party/gpu-deps/gpu-deps.tar.xz, the dependency bundle tools/gpu_check.sh builds against on a GPU
# machine that has CUDA, torch and a compiler but no Debian development packages and no network (docs/gpu.md).
# Run on a Debian 12 CPU machine (apt-get download + dpkg -x, nothing is installed): the libraries of a build
# with SEMAIM_WITH_OPENCV=OFF and SEMAIM_WITH_MPI=OFF, headers + shared libraries + CMake configs, and the
# first images of Debian's Fashion-MNIST as IDX files. Deterministic for the same package versions.
# usage: tools/gpu_deps.sh [OUT.tar.xz]    env: FMNIST_ROOT (Debian's dataset), FMNIST_TRAIN, FMNIST_TEST
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/third_party/gpu-deps/gpu-deps.tar.xz}"
fmnist_root="${FMNIST_ROOT:-/usr/share/datasets/fashion-mnist}"
n_train="${FMNIST_TRAIN:-6400}"  # 50 steps of batch 128: the pretraining check's epoch
n_test="${FMNIST_TEST:-512}"
arch="x86_64-linux-gnu"

# Build-time packages (headers, CMake configs, the .so links) and their runtime libraries. OpenCV is core and
# imgproc only (the in-memory transforms); libGLX and the X11 libraries are there because libopencv_core.so
# names libGLX.so.0 (it is never called); mesa, which libglx0 depends on, is loaded lazily and left out.
dev=(libyaml-cpp-dev libspdlog-dev libfmt-dev nlohmann-json3-dev libcli11-dev libgtest-dev zlib1g-dev
  libprotobuf-dev protobuf-compiler libopencv-core-dev libopencv-imgproc-dev)
runtime=(libyaml-cpp0.7 libspdlog1.10 libfmt9 zlib1g libprotobuf32 libprotobuf-lite32 libprotoc32
  libopencv-core406 libopencv-imgproc406 libtbb12 libtbbmalloc2 libblas3 liblapack3 libgfortran5 libquadmath0
  libglx0 libglvnd0 libx11-6 libxcb1 libxau6 libxdmcp6 libbsd0 libmd0)
# Libraries every machine with a compiler has (glibc, gcc's runtime): a bundled library may need only these
# besides the bundle's own.
base_libs="libc.so.6 libm.so.6 libdl.so.2 libpthread.so.0 librt.so.1 ld-linux-x86-64.so.2 libstdc++.so.6 libgcc_s.so.1"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/debs" "$work/stage" "$work/prefix"
chmod 755 "$work" && chmod 777 "$work/debs"  # apt-get download runs as _apt where it can
echo "[gpu_deps] downloading ${#dev[@]} + ${#runtime[@]} Debian packages"
(cd "$work/debs" && apt-get download -q "${dev[@]}" "${runtime[@]}" >/dev/null)
for deb in "$work"/debs/*.deb; do dpkg -x "$deb" "$work/stage"; done
cp -a "$work/stage/usr/." "$work/prefix/"
p="$work/prefix"
[ -d "$work/stage/lib" ] && cp -a "$work/stage/lib/." "$p/lib/"  # zlib1g lives in /lib
# BLAS and LAPACK sit behind Debian's alternatives, which dpkg -x does not set up.
ln -sf blas/libblas.so.3 "$p/lib/$arch/libblas.so.3"
ln -sf lapack/liblapack.so.3 "$p/lib/$arch/liblapack.so.3"

# Only what a build and its binaries use: no docs, no static copies of shared libraries, no Debian OpenCV
# config (it lists every OpenCV module and fails on the missing ones; a two-module config replaces it).
rm -rf "$p/share/doc" "$p/share/man" "$p/share/lintian" "$p/share/bug" "$p/share/X11" "$p/lib/$arch/cmake/opencv4"
find "$p/lib" -name '*.a' ! -name 'libgtest*.a' -delete
find "$p" -xtype l -delete  # links to files of packages not bundled (e.g. libtbb-dev's)
find "$p" -type d -empty -delete
mkdir -p "$p/lib/$arch/cmake/opencv4"
cat > "$p/lib/$arch/cmake/opencv4/OpenCVConfig.cmake" <<'CMAKE'
# OpenCV core + imgproc of the semaim GPU bundle (written by tools/gpu_deps.sh); other modules are absent.
get_filename_component(_semaim_cv_prefix "${CMAKE_CURRENT_LIST_DIR}/../../../.." ABSOLUTE)
set(OpenCV_VERSION 4.6.0)
set(OpenCV_INCLUDE_DIRS "${_semaim_cv_prefix}/include/opencv4")
set(OpenCV_LIBS opencv_core opencv_imgproc)
foreach(_m core imgproc)
  if(NOT TARGET opencv_${_m})
    add_library(opencv_${_m} SHARED IMPORTED)
    set_target_properties(opencv_${_m} PROPERTIES
      IMPORTED_LOCATION "${_semaim_cv_prefix}/lib/x86_64-linux-gnu/libopencv_${_m}.so.4.6.0"
      INTERFACE_INCLUDE_DIRECTORIES "${OpenCV_INCLUDE_DIRS}")
  endif()
endforeach()
set_property(TARGET opencv_imgproc PROPERTY INTERFACE_LINK_LIBRARIES opencv_core)
foreach(_c ${OpenCV_FIND_COMPONENTS})
  if(NOT _c MATCHES "^(core|imgproc)$")
    set(OpenCV_FOUND FALSE)
    set(OpenCV_NOT_FOUND_MESSAGE "the semaim GPU bundle has OpenCV core and imgproc only, not ${_c}")
  endif()
endforeach()
CMAKE

# Every bundled ELF file may need only bundled libraries and the base ones.
missing=""
while IFS= read -r f; do
  for lib in $(readelf -d "$f" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    [ -e "$p/lib/$arch/$lib" ] && continue
    case " $base_libs " in *" $lib "*) continue ;; esac
    missing+="  $f needs $lib"$'\n'
  done
done < <(find "$p/lib" "$p/bin" -type f \( -name '*.so*' -o -perm -u+x \) -exec sh -c 'head -c4 "$1" | grep -q ELF' _ {} \; -print)
if [ -n "$missing" ]; then
  echo "[gpu_deps] libraries the bundle lacks:"$'\n'"$missing" >&2
  exit 1
fi

# The first n_train / n_test Fashion-MNIST images and labels as gzipped IDX files (same bytes as Debian's).
mkdir -p "$p/share/datasets/fashion-mnist"
python3 - "$fmnist_root" "$p/share/datasets/fashion-mnist" "$n_train" "$n_test" <<'PY'
import gzip, struct, sys
src, dst, n_train, n_test = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
for prefix, n in (("train", n_train), ("t10k", n_test)):
    for kind in ("images-idx3", "labels-idx1"):
        name = f"{prefix}-{kind}-ubyte.gz"
        with gzip.open(f"{src}/{name}", "rb") as f:
            data = f.read()
        ndims = data[3]
        dims = list(struct.unpack(">" + "I" * ndims, data[4:4 + 4 * ndims]))
        row = 1
        for d in dims[1:]:
            row *= d
        assert n <= dims[0], f"{name}: asked for {n} of {dims[0]}"
        head = data[:4] + struct.pack(">" + "I" * ndims, n, *dims[1:])
        body = data[4 + 4 * ndims:4 + 4 * ndims + n * row]
        with open(f"{dst}/{name}", "wb") as f:  # mtime 0: the same bytes on every run
            with gzip.GzipFile(fileobj=f, mode="wb", mtime=0, filename="") as g:
                g.write(head + body)
PY

{
  echo "# semaim GPU bundle: made by tools/gpu_deps.sh from these Debian packages"
  # shellcheck disable=SC2016  # dpkg-deb's own ${field} syntax
  for deb in "$work"/debs/*.deb; do dpkg-deb --showformat='${Package} ${Version}\n' -W "$deb"; done
  echo "# Fashion-MNIST: first $n_train train and $n_test test images of $fmnist_root"
} > "$p/MANIFEST.txt"

mkdir -p "$(dirname "$out")"
tar -C "$p" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - . | xz -9e -T1 > "$out.tmp"
mv "$out.tmp" "$out"
echo "[gpu_deps] wrote $out: $(du -h "$out" | cut -f1) packed, $(du -sh "$p" | cut -f1) unpacked"
