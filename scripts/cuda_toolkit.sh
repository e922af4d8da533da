#!/usr/bin/env bash
# Assemble a CUDA 13.0 toolkit from PyPI wheels, for building `--features cuda` on a machine
# with no GPU and no system CUDA (this one). Prints the toolkit's root on its last line.
#
# Why 13.0 and not the newest 13.x: the kernels are compiled to PTX, and a driver only loads PTX
# from a toolkit no newer than itself. 13.0 runs on every CUDA 13 driver.
#
# The wheels carry nvcc, headers and the versioned runtime libraries, but neither the unversioned
# names the linker looks for (libcublas.so) nor the driver's link stub (libcuda.so), which ships
# with the driver, not the toolkit. We add both: symlinks, and a stub built from the driver
# symbols cudarc declares. The stub has the driver's soname, so at run time the real
# libcuda.so.1 of the GPU machine is the one loaded.
set -euo pipefail

root="${1:-build/cuda-13.0}"
wheels="${CUDA_WHEELS_DIR:-build/cuda-wheels}"
packages=(
  nvidia-cuda-nvcc==13.0.88
  nvidia-cuda-crt==13.0.88
  nvidia-nvvm==13.0.88
  nvidia-cuda-cccl==13.0.85
  nvidia-cuda-runtime==13.0.96
  nvidia-cuda-nvrtc==13.0.88
  nvidia-curand==10.4.0.35
  nvidia-cublas==13.0.2.14
)

if [[ -x "$root/bin/nvcc" && -e "$root/lib/libcuda.so" ]]; then
  echo "$root"
  exit 0
fi

mkdir -p "$wheels"
python3 -m pip download --quiet --no-deps --dest "$wheels" "${packages[@]}" >&2
unpack="$(mktemp -d)"
trap 'rm -rf "$unpack"' EXIT
for w in "$wheels"/*.whl; do
  python3 -m zipfile -e "$w" "$unpack" >&2
done
rm -rf "$root"
mkdir -p "$(dirname "$root")"
mv "$unpack/nvidia/cu13" "$root"
chmod +x "$root"/bin/* "$root"/nvvm/bin/*

# Link-time names (the wheels only carry the sonames).
for lib in "$root"/lib/lib*.so.*; do
  base="$(basename "$lib")"
  link="$root/lib/${base%%.so.*}.so"
  [[ -e "$link" ]] || ln -s "$base" "$link"
done

# libcuda.so link stub: one empty function per driver entry point cudarc binds.
cudarc="$(cargo metadata --format-version 1 --all-features 2>/dev/null |
  python3 -c 'import json,sys; print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"]=="cudarc"))')"
driver_sys="$(dirname "$cudarc")/src/driver/sys/mod.rs"
grep -oE '^ +fn cu[A-Za-z0-9_]+\(' "$driver_sys" | sed -E 's/ *fn //; s/\($//' | sort -u |
  awk '{print "void " $1 "(void) {}"}' >"$root/lib/cuda_stub.c"
cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$root/lib/libcuda.so" "$root/lib/cuda_stub.c"
rm "$root/lib/cuda_stub.c"
echo "$root"
