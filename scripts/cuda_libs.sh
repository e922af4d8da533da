# Sourced by the GPU scripts: puts the CUDA libraries that binary "$1" links but cannot find on
# LD_LIBRARY_PATH, from the system's CUDA, else the CUDA 13 wheels that PyTorch's Python
# carries (site-packages/nvidia/...). Returns 1, naming them, when some are still missing.
find_cuda_libs() {
  local bin="$1"
  local dirs=(/usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/nvidia/lib64
    /usr/lib/x86_64-linux-gnu /usr/lib64)
  local py lib hit
  py="$(python3 -c 'import nvidia, os; print(" ".join(nvidia.__path__))' 2>/dev/null || true)"
  for lib in $(ldd "$bin" | awk '/not found/ {print $1}'); do
    hit="$(find "${dirs[@]}" $py -name "$lib" 2>/dev/null | head -1)"
    [[ -n "$hit" ]] && export LD_LIBRARY_PATH="$(dirname "$hit")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  done
  if ldd "$bin" | grep -q 'not found'; then
    echo "missing CUDA libraries: $(ldd "$bin" | awk '/not found/ {print $1}' | tr '\n' ' ')" >&2
    return 1
  fi
}
