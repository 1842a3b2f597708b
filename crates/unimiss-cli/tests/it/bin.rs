//! The `unimiss` binary run as a user runs it: spawn it, wait for a point in a run and kill it,
//! read its run directory; the small phantom set the fine-tuning tests train on.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub type Res = Result<(), Box<dyn std::error::Error>>;

pub const BIN: &str = env!("CARGO_BIN_EXE_unimiss");

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}

pub fn run(args: &[&str]) -> Result<Output, Box<dyn std::error::Error>> {
    Ok(Command::new(BIN).args(args).output()?)
}

pub fn run_ok(args: &[&str]) -> Result<Output, Box<dyn std::error::Error>> {
    let out = run(args)?;
    if !out.status.success() {
        return Err(format!("unimiss {args:?} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(out)
}

/// `unimiss ARGS`, which must fail: its stderr.
pub fn run_err(args: &[&str]) -> Result<String, Box<dyn std::error::Error>> {
    let out = run(args)?;
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.success() {
        return Err(format!("unimiss {args:?} succeeded where it must fail: {err}").into());
    }
    Ok(err)
}

/// The records of one kind (`step`, `epoch`) of `RUN/log.jsonl`.
pub fn log_records(run: &Path, kind: &str) -> Result<Vec<serde_json::Value>, Box<dyn std::error::Error>> {
    let mut out = Vec::new();
    for line in std::fs::read_to_string(run.join("log.jsonl"))?.lines() {
        let v: serde_json::Value = serde_json::from_str(line)?;
        if v["kind"] == kind {
            out.push(v);
        }
    }
    Ok(out)
}

pub fn records(run: &Path, kind: &str) -> usize {
    std::fs::read_to_string(run.join("log.jsonl"))
        .map(|t| t.lines().filter(|l| l.contains(&format!("\"kind\":\"{kind}\""))).count())
        .unwrap_or(0)
}

/// The newest checkpoint directory (`checkpoints/latest` names it).
pub fn latest(run: &Path) -> Result<PathBuf, Box<dyn std::error::Error>> {
    let dir = run.join("checkpoints");
    let name = std::fs::read_to_string(dir.join("latest"))?;
    Ok(dir.join(name.trim()))
}

/// Kills `child` with SIGKILL once `when()` holds (checked every millisecond); `false` if the
/// child exited first.
pub fn kill_when(child: &mut Child, limit: Duration, when: impl Fn() -> bool) -> Result<bool, Box<dyn std::error::Error>> {
    let t0 = Instant::now();
    loop {
        if child.try_wait()?.is_some() {
            return Ok(false);
        }
        if when() {
            child.kill()?;
            child.wait()?;
            return Ok(true);
        }
        if t0.elapsed() > limit {
            child.kill()?;
            child.wait()?;
            return Err(format!("the run did not reach the kill point within {limit:?}").into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

pub fn spawn(args: &[&str]) -> std::io::Result<Child> {
    Command::new(BIN).args(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn()
}

pub struct Phantoms {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
}

pub fn phantoms() -> Result<Phantoms, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("ph");
    run_ok(&["phantoms", "--out", s(&root), "--seed", "3", "--count", "10", "--dims", "16,64,64", "--size-2d", "64"])?;
    Ok(Phantoms { _dir: dir, root })
}

/// `finetune --task TASK` on the phantoms with the `ci` preset, batch 2, `iters` steps per
/// epoch, seed 5, plus `extra` flags.
pub fn finetune_ci(ph: &Phantoms, task: &str, out: &Path, epochs: usize, iters: usize, extra: &[&str]) -> Vec<String> {
    let m = |n: &str| ph.root.join(format!("{task}_{n}.tsv")).to_string_lossy().into_owned();
    let mut v: Vec<String> = ["finetune", "--task", task, "--train", &m("train"), "--val", &m("val"), "--config", "ci", "--set", "batch_size=2"]
        .iter()
        .map(|a| a.to_string())
        .collect();
    v.extend(["--set".into(), format!("iters_per_epoch={iters}"), "--epochs".into(), epochs.to_string(), "--seed".into(), "5".into()]);
    v.extend(["--output".into(), s(out).to_string()]);
    v.extend(extra.iter().map(|a| a.to_string()));
    v
}

pub fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}
