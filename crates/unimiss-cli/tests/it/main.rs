//! The `unimiss` binary driven as scripts call it: `convert` then `embed` on the official
//! fixture checkpoint, compared with the official outputs.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use candle::{Device, Tensor};

mod bin;
mod common;
mod drills;
mod outputs;
mod real_data;
mod restart;
mod runtime;

use common::fixtures;

type Res = Result<(), Box<dyn std::error::Error>>;

fn unimiss(args: &[&str]) -> Res {
    let out = Command::new(env!("CARGO_BIN_EXE_unimiss")).args(args).output()?;
    if !out.status.success() {
        return Err(format!("unimiss {args:?} failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(())
}

/// max |a − e| / max |e|
fn rel_err(a: &Tensor, e: &Tensor) -> Result<f32, candle::Error> {
    let d = (a - e)?.abs()?.max_all()?.to_scalar::<f32>()?;
    Ok(d / e.abs()?.max_all()?.to_scalar::<f32>()?)
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}

#[test]
#[ignore = "needs the parity fixtures: set UNIMISS_FIXTURES (default ../shared/fixtures/parity), run with --include-ignored"]
fn convert_then_embed_reproduces_the_official_outputs() -> Res {
    let fx = fixtures();
    let tmp = tempfile::tempdir()?;
    let (weights, inputs, output) =
        (tmp.path().join("w.safetensors"), tmp.path().join("in.safetensors"), tmp.path().join("out.safetensors"));
    unimiss(&["convert", "--from", path(&fx.join("mit_tiny_official.pth")), "--to", path(&weights), "--which", "teacher"])?;

    let io = candle::safetensors::load(fx.join("mit_tiny_io.safetensors"), &Device::Cpu)?;
    // The model inputs only (the file also holds rank-4/5 stage outputs, which are not images).
    let names = ["input2d", "input3d", "input2d_interp1", "input3d_interp"];
    let batch: HashMap<String, Tensor> = names.iter().map(|n| (n.to_string(), io[*n].clone())).collect();
    candle::safetensors::save(&batch, &inputs)?;
    unimiss(&["embed", "--weights", path(&weights), "--arch", "tiny", "--inputs", path(&inputs), "--output", path(&output)])?;

    let got = candle::safetensors::load(&output, &Device::Cpu)?;
    let expect =
        [("input2d", "out2d"), ("input2d.head", "head2d"), ("input3d", "out3d"), ("input3d.head", "head3d"), ("input2d_interp1", "out2d_interp1"), ("input3d_interp", "out3d_interp")];
    for (ours, official) in expect {
        let a = got.get(ours).ok_or_else(|| format!("embed wrote no {ours}"))?;
        let e = rel_err(a, &io[official])?;
        // The fixture README's tolerance for outputs: 1e-5 relative to the largest value.
        assert!(e <= 1e-5, "{ours} vs official {official}: relative error {e}");
    }
    Ok(())
}

/// A run directory holds one run: a second `pretrain` into a directory with a checkpoint stops
/// before touching it and names `--resume` and `--output` (one without a checkpoint is started
/// again: `restart::`).
#[test]
fn pretrain_refuses_a_directory_that_holds_a_run() -> Res {
    let tmp = tempfile::tempdir()?;
    let run = tmp.path().join("run");
    std::fs::create_dir_all(run.join("checkpoints/ckpt-00000004"))?;
    std::fs::write(run.join("log.jsonl"), "{}\n")?;
    let out = Command::new(env!("CARGO_BIN_EXE_unimiss")).args(["pretrain", "--output", path(&run)]).output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "pretrain wrote into an occupied run directory: {err}");
    assert!(err.contains("--resume") && err.contains("--output") && err.contains(path(&run)), "{err}");
    assert_eq!(std::fs::read_dir(&run)?.count(), 2, "the run directory was written into");
    assert_eq!(std::fs::read_to_string(run.join("log.jsonl"))?, "{}\n");
    Ok(())
}

/// The CPU build: `gpu-info --device cpu` runs its smoke check; `gpu-info` and `embed` on
/// `--device cuda:0` stop (exit status 1, no panic) with the error that names the missing CUDA
/// build and how to get it, `embed` before reading any file.
#[cfg(not(feature = "cuda"))]
#[test]
fn gpu_verbs_say_when_the_binary_has_no_cuda() -> Res {
    let out = Command::new(env!("CARGO_BIN_EXE_unimiss")).args(["gpu-info", "--device", "cpu"]).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("built with: cuda no, nccl no") && text.contains("gpu-info: OK"), "{text}");
    let missing = "/nonexistent/unimiss-test";
    for args in [
        vec!["gpu-info", "--device", "cuda:0"],
        vec!["embed", "--weights", missing, "--arch", "tiny", "--inputs", missing, "--output", missing, "--device", "cuda:0"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_unimiss")).args(&args).output()?;
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("device cuda:0: this binary was built without CUDA") && err.contains("gpu-build"), "{args:?}: {err}");
    }
    Ok(())
}

/// `bench model|train --batch N` run their workloads at that batch (as `bench_torch.py --batch`,
/// e.g. the paper's per-GPU 24) and report it in the JSON rows. No timing is checked.
#[test]
fn bench_workloads_take_a_batch() -> Res {
    let tmp = tempfile::tempdir()?;
    for (what, extra) in [("model", vec![]), ("train", vec!["--out-dim", "256"])] {
        let json = tmp.path().join(format!("{what}.json"));
        let mut args = vec!["bench", what, "--arch", "tiny", "--modality", "3d", "--batch", "1", "--iters", "1", "--warmup", "0", "--json", path(&json)];
        args.extend(extra);
        unimiss(&args)?;
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json)?)?;
        let rows = v.get("results").unwrap_or(&v).as_array().cloned().unwrap_or_default();
        assert!(!rows.is_empty() && rows.iter().all(|r| r["batch"] == 1), "{what}: {v}");
    }
    Ok(())
}
