#!/usr/bin/env python3
"""Helpers of scripts/gpu-check.sh, standard library only (the GPU machine's python3 is enough).

  inputs IO.safetensors OUT.safetensors          the model inputs of the parity fixture
  parity IO.safetensors DEVICE.safetensors CPU.safetensors TOL
                                                 embed outputs against the official ones
  losses LOG.jsonl MEM.txt                       a pretraining run: finite, falling, peak memory
  same-losses A.jsonl B.jsonl N                  the first N step losses of two runs agree

Each command prints a last line "result: ..." and exits 0 (pass) or 1 (fail).
"""
import json
import math
import struct
import sys

INPUTS = ["input2d", "input3d", "input2d_interp1", "input3d_interp"]
# (embed output, official output) as in crates/unimiss-cli/tests/it/main.rs
PAIRS = [("input2d", "out2d"), ("input2d.head", "head2d"), ("input3d", "out3d"), ("input3d.head", "head3d"),
         ("input2d_interp1", "out2d_interp1"), ("input3d_interp", "out3d_interp")]


def read_st(path):
    """{name: (dtype, shape, raw bytes)} of a safetensors file."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        out[name] = (info["dtype"], info["shape"], body[a:b])
    return out


def write_st(path, tensors):
    header, offset, chunks = {}, 0, []
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        chunks.append(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(chunks))


def floats(t):
    dtype, _, raw = t
    if dtype != "F32":
        raise SystemExit(f"result: expected F32 tensors, got {dtype}")
    return struct.unpack(f"<{len(raw) // 4}f", raw)


def rel_err(a, e):
    """max |a - e| / max |e|"""
    if len(a) != len(e):
        return math.inf
    return max(abs(x - y) for x, y in zip(a, e)) / max(max(abs(y) for y in e), 1e-30)


def cmd_inputs(io_path, out_path):
    io = read_st(io_path)
    write_st(out_path, {n: io[n] for n in INPUTS})
    print(f"result: wrote {len(INPUTS)} inputs to {out_path}")
    return 0


def cmd_parity(io_path, dev_path, cpu_path, tol):
    io, dev, cpu = read_st(io_path), read_st(dev_path), read_st(cpu_path)
    worst, bad = 0.0, []
    for ours, official in PAIRS:
        if ours not in dev:
            bad.append(f"{ours} missing")
            continue
        e = rel_err(floats(dev[ours]), floats(io[official]))
        c = rel_err(floats(dev[ours]), floats(cpu[ours]))
        print(f"{ours:18s} device vs official {e:.2e}   device vs cpu {c:.2e}")
        worst = max(worst, e)
        if not e <= float(tol):
            bad.append(f"{ours} {e:.2e}")
    print(f"result: worst relative error vs official {worst:.2e} (tolerance {tol})" + (f"; FAILED: {', '.join(bad)}" if bad else ""))
    return 1 if bad else 0


def steps(path):
    out = []
    with open(path) as f:
        for line in f:
            try:
                r = json.loads(line)
            except ValueError:
                continue
            if r.get("kind") == "step":
                out.append(r)
    return out


def cmd_losses(log_path, mem_path):
    rs = steps(log_path)
    if not rs:
        print("result: no step records in the log")
        return 1
    bad = [r["step"] for r in rs if not math.isfinite(float(r.get("loss", math.nan)))]
    parts, falls = [], True
    for mod in sorted({str(r.get("modality")) for r in rs}):
        ls = [float(r["loss"]) for r in rs if str(r.get("modality")) == mod]
        k = max(1, min(20, len(ls) // 4))
        first, last = sum(ls[:k]) / k, sum(ls[-k:]) / k
        falls = falls and last < first
        parts.append(f"{mod}: {len(ls)} steps, loss {first:.4f} -> {last:.4f} (means of {k})")
    peak = 0
    try:
        with open(mem_path) as f:
            peak = max((int(x) for x in f.read().split() if x.isdigit()), default=0)
    except OSError:
        pass
    print(f"result: {'; '.join(parts)}; non-finite at steps {bad[:5] or 'none'}; peak GPU memory {peak} MiB")
    return 0 if falls and not bad else 1


def cmd_same(a_path, b_path, n):
    a, b = steps(a_path)[:int(n)], steps(b_path)[:int(n)]
    if len(b) < int(n) or len(a) < len(b):
        print(f"result: too few steps ({len(a)}, {len(b)}) to compare {n}")
        return 1
    worst = max(abs(x["loss"] - y["loss"]) / max(abs(x["loss"]), 1e-12) for x, y in zip(a, b))
    print(f"result: {len(b)} step losses with and without NCCL, worst relative difference {worst:.2e}")
    return 0 if worst <= 1e-5 else 1


def main(argv):
    cmds = {"inputs": (cmd_inputs, 2), "parity": (cmd_parity, 4), "losses": (cmd_losses, 2), "same-losses": (cmd_same, 3)}
    if len(argv) < 1 or argv[0] not in cmds or len(argv) - 1 != cmds[argv[0]][1]:
        print(__doc__)
        return 2
    fn, _ = cmds[argv[0]]
    return fn(*argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
