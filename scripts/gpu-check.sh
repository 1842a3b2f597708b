#!/usr/bin/env bash
# gpu-check.sh: the CUDA build of unimiss checked on a GPU machine in one call of under 8 minutes.
#
# Run from the repository root on the GPU machine (it has python3 with PyTorch, no Rust):
#   bash scripts/gpu-check.sh        # carry .gpubin/ (from `cargo xtask gpu-build`) along
# Reads:  .gpubin/unimiss.gz and .gpubin/unimiss-ops-cuda-tests.gz (or $UNIMISS_GPU_BIN, a plain
#         binary); the parity fixtures at $UNIMISS_FIXTURES, else shared/fixtures/parity, else
#         ../shared/fixtures/parity, else made again by shared/reference/make_parity_fixtures.py
#         (the fixtures are 112 MB, over the 64 MiB that travels; the official code for it and
#         for bench_torch.py is under shared/reference or ../shared/reference).
# Writes: $OUT (default ./gpu-check-out): summary.txt (one line per stage), check.log (every
#         stage's output), pretrain.jsonl, the benchmark JSON files: 8 files at most.
# Stages: binary, device, ops-tests, parity, trajectory, pretrain, bench, bench-b24, nccl. Each
# runs under `timeout`; a failed stage is recorded and the next one runs. Without a usable CUDA
# device the script stops after the device stage, exit status 2, saying so. Exit status 1 when
# any stage failed, 0 when none did (skipped stages are listed as SKIP, never as PASS).
# Rehearsal without a GPU: GPU_CHECK_DEVICE=cpu UNIMISS_GPU_BIN=target/release/unimiss
# GPU_CHECK_STEPS=10 runs every stage on the CPU (no nvidia-smi needed).
set -u

ROOT=$(pwd)
OUT=${OUT:-$ROOT/gpu-check-out}
BUDGET=${GPU_CHECK_BUDGET_S:-450}
export DEV=${GPU_CHECK_DEVICE:-cuda:0} STEPS=${GPU_CHECK_STEPS:-300}
WORK=$(mktemp -d /tmp/gpu-check.XXXXXX)
mkdir -p "$OUT"
: > "$OUT/summary.txt"
: > "$OUT/check.log"
START=$(date +%s)
FAILED=0
export ROOT OUT WORK PYTHONUNBUFFERED=1

log() { echo "$*" | tee -a "$OUT/check.log"; }
# summary STATUS STAGE SECONDS TEXT
summary() { printf '%-5s %-10s %4ss  %s\n' "$1" "$2" "$3" "$4" | tee -a "$OUT/summary.txt"; }
first_dir() { for d in "$@"; do [ -n "$d" ] && [ -d "$d" ] && { (cd "$d" && pwd); return 0; }; done; return 1; }

# stage NAME LIMIT_S FUNCTION: runs FUNCTION in a child bash under `timeout` (the limit shrinks to
# what is left of the budget), its output into check.log; its last line starting with "result:"
# is the summary text. Exit 0 = PASS, 3 = SKIP, anything else = FAIL (124 = timed out).
stage() {
  local name=$1 limit=$2 fn=$3 left t0 rc text
  left=$(( BUDGET - ($(date +%s) - START) ))
  if [ "$left" -lt 20 ]; then summary SKIP "$name" 0 "out of time (budget ${BUDGET}s)"; return 3; fi
  [ "$limit" -gt "$left" ] && limit=$left
  log "=== $name (limit ${limit}s) ==="
  t0=$(date +%s)
  timeout -k 10 "$limit" bash -c "$fn" > "$WORK/$name.log" 2>&1
  rc=$?
  cat "$WORK/$name.log" >> "$OUT/check.log"
  text=$(grep '^result:' "$WORK/$name.log" | tail -1 | cut -c9-)
  case $rc in
    0) summary PASS "$name" $(( $(date +%s) - t0 )) "${text:-ok}" ;;
    3) summary SKIP "$name" $(( $(date +%s) - t0 )) "${text:-skipped}" ;;
    124|137) FAILED=1; summary FAIL "$name" $(( $(date +%s) - t0 )) "timed out after ${limit}s ${text:+($text)}" ;;
    *) FAILED=1; summary FAIL "$name" $(( $(date +%s) - t0 )) "${text:-exit status $rc, see check.log}" ;;
  esac
  return $rc
}

# --- library path: the machine's pip CUDA 13 libraries (PyTorch's), then whatever was set ----
NVROOT=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' 2>/dev/null)/nvidia
for d in "$NVROOT/cu13/lib" "$NVROOT/nccl/lib"; do
  [ -d "$d" ] && LD_LIBRARY_PATH=$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
done
export LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}
# gpu-build's copies of the non-CUDA libraries (fontconfig, freetype and theirs), searched last,
# for unimiss alone and only when the image lacks one (see after the binary stage).
export FALLBACK=$ROOT/.gpubin/lib
export BIN=$WORK/unimiss TESTS=$WORK/ops-tests
export FIXTURES=$(first_dir "${UNIMISS_FIXTURES:-}" shared/fixtures/parity ../shared/fixtures/parity || true)
export REFERENCE=$(first_dir shared/reference ../shared/reference || true)
log "gpu-check: $(date -u +%FT%TZ) in $ROOT, budget ${BUDGET}s, LD_LIBRARY_PATH=$LD_LIBRARY_PATH"

s_binary() {
  if [ -n "${UNIMISS_GPU_BIN:-}" ]; then cp "$UNIMISS_GPU_BIN" "$BIN"
  elif [ -f .gpubin/unimiss.gz ]; then gunzip -c .gpubin/unimiss.gz > "$BIN"
  else echo "result: no .gpubin/unimiss.gz: build it with cargo xtask gpu-build and carry .gpubin"; exit 1; fi
  chmod +x "$BIN"
  [ -f .gpubin/unimiss-ops-cuda-tests.gz ] && gunzip -c .gpubin/unimiss-ops-cuda-tests.gz > "$TESTS" && chmod +x "$TESTS"
  ldd "$BIN" | grep -E 'not found|libcu|libnccl'
  if LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$FALLBACK ldd "$BIN" | grep -q 'not found'; then
    echo "result: libraries not found (ldd above); set LD_LIBRARY_PATH to the CUDA 13 libraries"; exit 1
  fi
  echo "result: $(stat -c %s "$BIN") bytes, every library found"
}

s_device() {
  if [ "$DEV" = cpu ]; then
    "$BIN" gpu-info --device cpu || exit 1
    echo "result: rehearsal on the CPU (GPU_CHECK_DEVICE=cpu)"; exit 0
  fi
  nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv,noheader \
    || { "$BIN" gpu-info --device cuda:0; echo "result: nvidia-smi failed: no GPU visible"; exit 1; }
  "$BIN" gpu-info --device "$DEV" || { echo "result: gpu-info failed (see its error above)"; exit 1; }
  echo "result: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1); gpu-info OK"
}

s_ops_tests() {
  [ -x "$TESTS" ] || { echo "result: no unimiss-ops CUDA test binary in .gpubin"; exit 3; }
  "$TESTS" --include-ignored cuda:: 2>&1 | tee "$WORK/ops.txt"
  local r=${PIPESTATUS[0]} line
  line=$(grep '^test result' "$WORK/ops.txt" | tail -1)
  echo "result: ${line:-the test binary did not run (exit status $r)}"
  exit "$r"
}

# The fixtures (112 MB) are over what travels (64 MiB): without them the official code makes
# them again from the same seeds (CPU, PyTorch of the machine) with the sizes of the shipped set.
s_parity() {
  local fx=$FIXTURES
  if [ -z "$fx" ] || [ ! -f "$fx/mit_tiny_official.pth" ]; then
    [ -n "$REFERENCE" ] || { echo "result: no parity fixtures and no shared/reference to make them"; exit 3; }
    echo "no parity fixtures here: making them with $REFERENCE/make_parity_fixtures.py"
    fx=$WORK/fx
    UNIMISS_OFFICIAL=$REFERENCE/official/UniMiSS python3 "$REFERENCE/make_parity_fixtures.py" --config tiny \
      --img-size-2d 64 --img-size-3d 16x64x64 --interp-2d 96x96 64x96 --interp-3d 16x96x96 16x64x96 \
      --no-probe --no-sensitivity --out-dir "$fx" || { echo "result: making the fixtures failed"; exit 1; }
  fi
  "$BIN" convert --from "$fx/mit_tiny_official.pth" --to "$WORK/w.safetensors" --which teacher || exit 1
  python3 "$ROOT/scripts/gpu_check_util.py" inputs "$fx/mit_tiny_io.safetensors" "$WORK/in.safetensors" || exit 1
  local d
  for d in dev cpu; do
    "$BIN" embed --weights "$WORK/w.safetensors" --arch tiny --inputs "$WORK/in.safetensors" \
      --output "$WORK/out-$d.safetensors" --device "$([ $d = dev ] && echo "$DEV" || echo cpu)" \
      || { echo "result: embed on $d failed"; exit 1; }
  done
  python3 "$ROOT/scripts/gpu_check_util.py" parity "$fx/mit_tiny_io.safetensors" \
    "$WORK/out-dev.safetensors" "$WORK/out-cpu.safetensors" 1e-4
}

s_trajectory() {
  echo "the trajectory replay is a Rust test (crates/unimiss-ssl/tests/it/trajectory.rs) on the CPU;"
  echo "the binary has no verb that replays it, and this machine has no Rust"
  echo "result: not offered by the binary"
  exit 3
}

# A short 2D+3D pretraining on the shipped sample; nvidia-smi samples the memory meanwhile.
s_pretrain() {
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 250 > "$WORK/mem.txt" 2>/dev/null &
  local smi=$! r
  "$BIN" pretrain --output "$WORK/run" --device "$DEV" --epochs 80 --max-steps "$STEPS" --seed 0 --quiet \
    --set checkpoint.every_epochs=0
  r=$?
  kill "$smi" 2>/dev/null
  cp "$WORK/run/log.jsonl" "$OUT/pretrain.jsonl" 2>/dev/null
  python3 "$ROOT/scripts/gpu_check_util.py" losses "$WORK/run/log.jsonl" "$WORK/mem.txt" || r=1
  exit "$r"
}

s_bench() {
  [ -n "$REFERENCE" ] || { echo "result: no shared/reference for bench_torch.py"; exit 3; }
  export UNIMISS_OFFICIAL=$REFERENCE/official/UniMiSS
  local failed="" amp tag base=()
  for amp in "" --amp; do
    tag=${amp:+amp}; tag=${tag:-f32}
    python3 "$REFERENCE/bench_torch.py" --device cuda $amp --configs tiny --iters 5 --warmup 2 \
      --json "$OUT/torch-$tag.json" || failed="$failed torch-$tag"
  done
  [ -s "$OUT/torch-f32.json" ] && base=(--baseline "$OUT/torch-f32.json")
  for w in model train; do
    "$BIN" bench $w --device "$DEV" --arch tiny --iters 5 --warmup 2 "${base[@]}" --json "$OUT/ours-$w.json" \
      || failed="$failed ours-$w"
  done
  echo "result: tiny at the default batches (2D 4, 3D 2): torch f32/AMP, ours f32${failed:+; FAILED:$failed}"
  [ -z "$failed" ]
}

# The paper's per-GPU batch, training steps: PyTorch AMP, then ours (bf16, then f32) beside it.
s_bench_b24() {
  [ -n "$REFERENCE" ] || { echo "result: no shared/reference for bench_torch.py"; exit 3; }
  export UNIMISS_OFFICIAL=$REFERENCE/official/UniMiSS
  python3 "$REFERENCE/bench_torch.py" --device cuda --amp --batch 24 --configs tiny --workloads train2d train3d \
    --iters 5 --warmup 2 --json "$OUT/torch-b24-amp.json" || exit 1
  local p failed=""
  for p in bf16 f32; do
    "$BIN" bench train --device "$DEV" --arch tiny --batch 24 --precision $p --iters 3 --warmup 1 \
      --baseline "$OUT/torch-b24-amp.json" --json "$WORK/ours-b24-$p.json" || failed="$failed ours-$p"
  done
  echo "result: tiny training steps at batch 24: PyTorch AMP beside ours bf16 and f32 (check.log)${failed:+; FAILED:$failed}"
  [ -z "$failed" ]
}

# NCCL with world size 1: init, all-reduce, and the same losses as the run without NCCL.
s_nccl() {
  "$BIN" gpu-info --device "$DEV" | grep -q 'nccl yes' || { echo "result: binary built without nccl"; exit 3; }
  WORLD_SIZE=1 RANK=0 LOCAL_RANK=0 "$BIN" pretrain --output "$WORK/run-nccl" --device "$DEV" --epochs 80 \
    --max-steps 20 --seed 0 --quiet --set checkpoint.every_epochs=0 || { echo "result: the NCCL run failed"; exit 1; }
  python3 "$ROOT/scripts/gpu_check_util.py" same-losses "$WORK/run/log.jsonl" "$WORK/run-nccl/log.jsonl" 20
}

export -f s_binary s_device s_ops_tests s_parity s_trajectory s_pretrain s_bench s_bench_b24 s_nccl

if ! stage binary 30 s_binary; then
  log "gpu-check: no runnable binary; nothing else can be checked"; rm -rf "$WORK"; exit 1
fi
if ldd "$BIN" | grep -q 'not found'; then
  log "gpu-check: from .gpubin/lib: $(ldd "$BIN" | grep 'not found' | awk '{print $1}' | tr '\n' ' ')"
  mv "$BIN" "$BIN.real"
  printf '#!/bin/sh\nLD_LIBRARY_PATH=$LD_LIBRARY_PATH:%s exec %s "$@"\n' "$FALLBACK" "$BIN.real" > "$BIN"
  chmod +x "$BIN"
fi
if ! stage device 30 s_device; then
  log "gpu-check: no usable CUDA device here; the remaining stages need one (stopping)"
  rm -rf "$WORK"; exit 2
fi
stage ops-tests 60 s_ops_tests
stage parity 60 s_parity
stage trajectory 5 s_trajectory
stage pretrain 150 s_pretrain
stage bench 150 s_bench
stage nccl 45 s_nccl
stage bench-b24 120 s_bench_b24
log "gpu-check: done in $(( $(date +%s) - START ))s; summary in $OUT/summary.txt"
rm -rf "$WORK"
exit "$FAILED"
