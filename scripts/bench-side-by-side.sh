#!/usr/bin/env bash
# Times the official PyTorch code and ours on the same workloads, one right after the other:
#   scripts/bench-side-by-side.sh OUT_DIR [UNIMISS_BINARY]
# PyTorch runs from $TORCH_PYTHON (default ../torchenv/bin/python; ../shared/reference/README.md
# says how to make it), the official code from ../shared/reference/official/UniMiSS. Writes into
# OUT_DIR: torch.{md,json,log}, model.{log,json}, train.{log,json}, and the load average at the
# start, between the two sides and at the end. Run it alone on the machine: check `uptime` first.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/bench-side-by-side.sh OUT_DIR [UNIMISS_BINARY]}
bin=${2:-target/release/unimiss}
py=${TORCH_PYTHON:-../torchenv/bin/python}
shared=${UNIMISS_SHARED:-../shared}
[ -x "$bin" ] || { echo "no binary at $bin: build it with cargo build --release -p unimiss-cli" >&2; exit 1; }
[ -x "$py" ] || { echo "no Python with torch at $py: see $shared/reference/README.md" >&2; exit 1; }
mkdir -p "$out"
stamp() { { date; uptime; } > "$out/uptime-$1.txt"; cat "$out/uptime-$1.txt"; }
stamp start
UNIMISS_OFFICIAL="$shared/reference/official/UniMiSS" "$py" "$shared/reference/bench_torch.py" \
  --iters 3 --warmup 1 --threads 2 --out "$out/torch.md" --json "$out/torch.json" > "$out/torch.log" 2>&1
stamp mid
RAYON_NUM_THREADS=2 "$bin" bench model --baseline "$out/torch.json" --json "$out/model.json" > "$out/model.log" 2>&1
RAYON_NUM_THREADS=2 "$bin" bench train --baseline "$out/torch.json" --json "$out/train.json" > "$out/train.log" 2>&1
stamp end
sed -n '/side by side/,$p' "$out/model.log"
sed -n '/^workload/,$p' "$out/train.log"
