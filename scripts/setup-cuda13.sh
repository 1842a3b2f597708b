#!/usr/bin/env bash
# setup-cuda13.sh: the CUDA 13.0 build toolkit from PyPI wheels, laid out as a CUDA_HOME for
# candle's `cuda` feature (and, with --nccl, libnccl for its `nccl` feature).
#
# The recipe of ../shared/docs/gpu-build.md (verified there): the CUDA 13.0.2 wheel set that
# PyTorch 2.11 pins, versioned-soname links under lib64, and a link-time stub libcuda.so whose
# every function returns CUDA_ERROR_NO_DEVICE (the real driver library replaces it at run time).
#
# Usage: scripts/setup-cuda13.sh [--nccl] [DIR]   (DIR defaults to $CUDA_BUILD_DIR or /tmp/cuda13)
# Writes DIR/env.sh (CUDA_HOME, PATH, CUDA_COMPUTE_CAP); re-running is cheap.
set -euo pipefail

NCCL=0
D=${CUDA_BUILD_DIR:-/tmp/cuda13}
for a in "$@"; do
  case $a in
    --nccl) NCCL=1 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    -*) echo "setup-cuda13: unknown option $a" >&2; exit 2 ;;
    *) D=$a ;;
  esac
done

command -v python3 >/dev/null || { echo "setup-cuda13: python3 is needed (for the venv and pip)" >&2; exit 1; }
command -v gcc >/dev/null || { echo "setup-cuda13: gcc is needed (for the libcuda stub)" >&2; exit 1; }

mkdir -p "$D"
[ -x "$D/venv/bin/pip" ] || python3 -m venv "$D/venv"
"$D/venv/bin/pip" install -q "cuda-toolkit[cudart,cublas,curand,nvrtc,nvcc,cccl,crt,nvvm]==13.0.2"
if [ "$NCCL" = 1 ]; then
  # Link time only: at run time the GPU machine's own libnccl.so.2 (PyTorch's) is used.
  # Pinned to the version verified here; only symbols present since NCCL 2.x are used.
  "$D/venv/bin/pip" install -q "nvidia-nccl-cu13==2.32.6"
fi
NV=$("$D/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/nvidia/cu13
R=$D/cuda                       # this becomes CUDA_HOME
mkdir -p "$R/lib64/stubs"
ln -sfn "$NV/bin" "$R/bin"; ln -sfn "$NV/include" "$R/include"; ln -sfn "$NV/nvvm" "$R/nvvm"
LIBS="$NV/lib/libcudart.so.13 $NV/lib/libcublas.so.13 $NV/lib/libcublasLt.so.13 $NV/lib/libcurand.so.10 $NV/lib/libnvrtc.so.13"
# The NCCL wheel has its own tree, nvidia/nccl/lib (not nvidia/cu13).
[ "$NCCL" = 1 ] && LIBS="$LIBS $NV/../nccl/lib/libnccl.so.2"
for p in $LIBS; do
  [ -e "$p" ] || { echo "setup-cuda13: $p is missing after the install" >&2; exit 1; }
  l=$(basename "$p")
  ln -sfn "$(realpath "$p")" "$R/lib64/$l"; ln -sfn "$l" "$R/lib64/${l%%.so.*}.so"
done
# Link-time stub for the driver library: names from cuda.h, plus cudarc's list when the crate
# sources are in the cargo registry.
{ gcc -E -P -I"$NV/include" "$NV/include/cuda.h" | grep -oE '\bcu[A-Z][A-Za-z0-9_]*[[:space:]]*\(' | tr -d '( \t'
  cat "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.*/src/driver/sys/mod.rs 2>/dev/null \
    | grep -oE '^pub unsafe fn cu[A-Za-z0-9_]+' | awk '{print $4}'
} | sort -u | awk '{print "int " $1 "(void) { return 100; }"}' > "$D/libcuda_stub.c"
gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$R/lib64/stubs/libcuda.so" "$D/libcuda_stub.c"
# A run-time copy of the stub under its soname, for smoke tests on this machine.
mkdir -p "$D/stubrun" && ln -sfn "$R/lib64/stubs/libcuda.so" "$D/stubrun/libcuda.so.1"
cat > "$D/env.sh" <<ENV
export CUDA_HOME=$R
export PATH=$R/bin:\$PATH          # cudarc's build script runs plain \`nvcc --version\`
export CUDA_COMPUTE_CAP=90          # no nvidia-smi here; cudaforge turns 90 into sm_90a
ENV
"$R/bin/nvcc" --version | tail -2
echo "now: source $D/env.sh"
