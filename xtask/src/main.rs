//! `cargo xtask <verb> [args…]`: the project's runner.
//!
//! xtask is built in the dev profile by the `cargo xtask` alias and has no candle dependency, so
//! it compiles in seconds. It holds no logic of its own: every verb (`pretrain`, `bench`, `embed`,
//! `convert`, `export`, `plot`, `finetune`, …) is forwarded to the optimised `unimiss` binary of
//! the `unimiss-cli` crate, which cargo builds in the release profile first. `cargo xtask help`
//! lists the verbs.
//!
//! Options read by xtask itself, before the verb:
//! - `--cuda`: build the binary with `--features cuda` (needs the CUDA toolkit, see docs/gpu.md).
//! - `--nccl`: build with `--features nccl` (implies CUDA) for multi-GPU data-parallel training.
//!
//! One verb is xtask's own: `gpu-build` ([`gpu_build`]) installs a CUDA 13.0 toolkit from PyPI,
//! builds the CUDA binary for the H100 without a GPU, checks it and gzips it for the GPU machine.

mod gpu_build;

use std::path::PathBuf;
use std::process::{Command, ExitCode};

const USAGE: &str = "\
Usage: cargo xtask [--cuda] [--nccl] <VERB> [ARGS...]
       cargo xtask gpu-build [--cuda-dir DIR] [--no-nccl] [--no-tests]

Options read by xtask, before the verb:
  --cuda  build the `unimiss` binary with CUDA (needs a CUDA 13.0 toolkit on PATH and
          CUDA_COMPUTE_CAP): compiled by this project, never yet run on a GPU (docs/gpu.md)
  --nccl  build with NCCL for multi-GPU data-parallel pretraining (implies --cuda; likewise
          compiled, never run)
  gpu-build  xtask's own verb: the CUDA+NCCL binary for the H100, built and checked here without a
          GPU (toolkit from PyPI, stub driver), gzipped to .gpubin/ (docs/gpu.md)

";

fn project_root() -> PathBuf {
    // CARGO_MANIFEST_DIR is xtask/; the workspace root is its parent.
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("gpu-build") {
        gpu_build::run(&project_root(), &args[1..])?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut features: Vec<&str> = Vec::new();
    while let Some(first) = args.first() {
        match first.as_str() {
            "--cuda" => features.push("unimiss-cli/cuda"),
            "--nccl" => features.push("unimiss-cli/nccl"),
            _ => break,
        }
        args.remove(0);
    }
    if args.is_empty() || matches!(args[0].as_str(), "help" | "--help" | "-h") {
        print!("{USAGE}");
        args = vec!["help".into()];
    }
    // cargo's own lines (`Finished …`, `Running …`) are hidden with --quiet; a first build is
    // long and otherwise silent, so say so when the binary is not built yet.
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| project_root().join("target"), PathBuf::from);
    if !target.join("release/unimiss").exists() {
        eprintln!("xtask: building the release `unimiss` binary first (about 15 minutes on 2 cores, once)");
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    // The binary runs in the caller's directory, so relative paths on the command line mean what
    // the user meant; UNIMISS_ROOT tells it where the repository (and its shipped sample) is.
    let root = project_root();
    cmd.env("UNIMISS_ROOT", &root)
        .args(["run", "--quiet"])
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .args(["--release", "--package", "unimiss-cli", "--bin", "unimiss"]);
    if !features.is_empty() {
        cmd.arg("--features").arg(features.join(","));
    }
    cmd.arg("--").args(&args);
    let status = cmd
        .status()
        .map_err(|e| anyhow::anyhow!("could not start cargo: {e}"))?;
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(c) => ExitCode::from(u8::try_from(c).unwrap_or(1)),
        None => ExitCode::FAILURE,
    })
}
