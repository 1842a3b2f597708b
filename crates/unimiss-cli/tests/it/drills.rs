//! Fault drills on the `unimiss` binary, as an operator meets them (issue 12): `kill -9` during
//! training and during a checkpoint write, then `--resume`, gives the losses and weights of a
//! straight run; bad inputs stop the run before the first step with the file and manifest line;
//! a full disk during a checkpoint names path and step, keeps the previous checkpoint usable and
//! leaves no temporary folder. Tiny runs (tiny MiT, phantoms or the shipped sample, a few steps).
//!
//! Disk full is simulated without mounting anything (CI runs as root, without tmpfs rights): the
//! child runs under `ulimit -f` (RLIMIT_FSIZE) with SIGXFSZ ignored, so a write past the limit
//! fails with EFBIG ("File too large") exactly where ENOSPC would, on the first large file (the
//! checkpoint's tensors), while the small files (log, config) still fit.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::bin::{BIN, Phantoms, Res, kill_when, latest, phantoms, records, run, run_ok, s, spawn, strs};

/// `unimiss ARGS` with writes limited to `kib` KiB per file and SIGXFSZ ignored (disk full).
fn run_fsize_limited(kib: u64, args: &[&str]) -> Result<Output, Box<dyn std::error::Error>> {
    let script = format!("trap '' XFSZ; ulimit -f {kib}; exec \"$0\" \"$@\"");
    Ok(Command::new("bash").arg("-c").arg(script).arg(BIN).args(args).output()?)
}

/// (step, loss bits) of every step record of `RUN/log.jsonl`.
fn step_losses(run: &Path) -> Result<Vec<(u64, u64)>, Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(run.join("log.jsonl"))?;
    let mut out = Vec::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line)?;
        if v["kind"] == "step" {
            let step = v["step"].as_u64().ok_or("step record without step")?;
            let loss = v["loss"].as_f64().ok_or("step record without loss")?;
            out.push((step, loss.to_bits()));
        }
    }
    Ok(out)
}

fn temporaries(run: &Path) -> Vec<String> {
    [run.join("checkpoints"), run.to_path_buf()]
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.starts_with(".tmp") || n.ends_with(".tmp"))
        .collect()
}

/// Same files, same bytes, in the two newest checkpoints.
fn same_checkpoint(a: &Path, b: &Path) -> Res {
    let (ca, cb) = (latest(a)?, latest(b)?);
    assert_eq!(ca.file_name(), cb.file_name(), "newest checkpoints differ");
    for f in ["weights.safetensors", "optimizer.safetensors"] {
        let (x, y) = (std::fs::read(ca.join(f))?, std::fs::read(cb.join(f))?);
        assert!(x == y, "{f} differs between {} and {}", ca.display(), cb.display());
    }
    Ok(())
}

// ---------------------------------------------------------------- fine-tuning

/// cls2d on the phantoms: tiny MiT at 64², batch 2, 2 steps per epoch.
fn finetune_args<'a>(ph: &'a Phantoms, out: &'a Path, epochs: &'a str) -> Vec<String> {
    let m = |n: &str| ph.root.join(n).to_string_lossy().into_owned();
    [
        "finetune", "--task", "cls2d", "--train", &m("cls2d_train.tsv"), "--val", &m("cls2d_val.tsv"), "--config", "ci",
        "--set", "batch_size=2", "--set", "iters_per_epoch=2", "--epochs", epochs, "--seed", "5", "--output", s(out),
    ]
    .iter()
    .map(|a| a.to_string())
    .collect()
}


/// Mid-epoch kill -9 and resume is `runtime::finetune_resume_after_kill_is_exact`; this one
/// kills while a checkpoint is being written (a `.tmp-ckpt-*` folder exists).
#[test]
fn finetune_kill9_during_checkpoint_write_then_resume_matches_a_straight_run() -> Res {
    let ph = phantoms()?;
    let straight = ph.root.join("straight");
    run_ok(&strs(&finetune_args(&ph, &straight, "3")))?;
    assert_eq!(step_losses(&straight)?.len(), 6);

    let b = ph.root.join("killed_in_checkpoint");
    let mut child = spawn(&strs(&finetune_args(&ph, &b, "3")))?;
    // After the first checkpoint is complete (killed inside the very first write, a run has
    // nothing to resume: `--resume` says "no checkpoint here" and the run must be restarted).
    let in_write = kill_when(&mut child, Duration::from_secs(600), || {
        latest(&b).is_ok() && temporaries(&b).iter().any(|n| n.starts_with(".tmp-ckpt"))
    })?;
    if !in_write {
        // The writes were too quick to catch: leave what a kill inside one leaves.
        eprintln!("drill: no checkpoint write caught in flight; a partial .tmp-ckpt folder is planted instead");
        let ck = latest(&b)?;
        let fake = b.join("checkpoints").join(".tmp-ckpt-99999999-1");
        std::fs::create_dir_all(&fake)?;
        std::fs::copy(ck.join("state.json"), fake.join("state.json"))?;
    }
    run_ok(&["finetune", "--resume", s(&b), "--epochs", "3"])?;
    assert!(temporaries(&b).is_empty(), "left behind: {:?}", temporaries(&b));
    assert_eq!(step_losses(&b)?, step_losses(&straight)?, "losses after kill -9 in a checkpoint write and --resume");
    same_checkpoint(&b, &straight)?;
    Ok(())
}

#[test]
fn finetune_bad_inputs_stop_before_training_with_file_and_line() -> Res {
    let ph = phantoms()?;
    let train = std::fs::read_to_string(ph.root.join("cls3d_train.tsv"))?;
    let mut lines: Vec<String> = train.lines().map(String::from).collect();
    let data: Vec<usize> = (0..lines.len()).filter(|&i| !lines[i].starts_with('#') && !lines[i].starts_with("path\t")).collect();
    let (missing, corrupt) = (data[0], data[1]);
    let corrupt_file = ph.root.join("corrupt.nii.gz");
    std::fs::write(&corrupt_file, b"this is text, not a NIfTI volume\n")?;
    let swap = |l: &str, p: &str| std::iter::once(p.to_string()).chain(l.split('\t').skip(1).map(String::from)).collect::<Vec<_>>().join("\t");
    lines[missing] = swap(&lines[missing], "missing.nii.gz");
    lines[corrupt] = swap(&lines[corrupt], s(&corrupt_file));
    let bad = ph.root.join("bad_train.tsv");
    std::fs::write(&bad, lines.join("\n") + "\n")?;
    let out = ph.root.join("bad_run");
    let res = run(&[
        "finetune", "--task", "cls3d", "--train", s(&bad), "--val", s(&ph.root.join("cls3d_val.tsv")), "--config", "ci",
        "--output", s(&out),
    ])?;
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(!res.status.success(), "a manifest with a missing and a corrupt file trained:\n{err}");
    for (line, file) in [(missing + 1, "missing.nii.gz"), (corrupt + 1, "corrupt.nii.gz")] {
        assert!(err.contains(&format!("bad_train.tsv:{line}")) && err.contains(file), "no {file} at line {line} in:\n{err}");
    }
    assert!(!out.join("checkpoints").exists() && records(&out, "step") == 0, "training started before the inputs were checked");
    Ok(())
}

#[test]
fn finetune_disk_full_during_checkpoint_keeps_the_previous_one() -> Res {
    let ph = phantoms()?;
    // The reference: one epoch, then `--resume --epochs 2` (the schedule depends on the epoch
    // count, so a straight 2-epoch run is a different run).
    let straight = ph.root.join("straight");
    run_ok(&strs(&finetune_args(&ph, &straight, "1")))?;
    run_ok(&["finetune", "--resume", s(&straight), "--epochs", "2"])?;
    let run_dir = ph.root.join("full");
    run_ok(&strs(&finetune_args(&ph, &run_dir, "1")))?;
    let before = latest(&run_dir)?;
    // Files up to 1 MiB: the log and config fit, the tensors do not.
    let res = run_fsize_limited(1024, &["finetune", "--resume", s(&run_dir), "--epochs", "2"])?;
    let err = String::from_utf8_lossy(&res.stderr).into_owned();
    assert!(!res.status.success(), "the run succeeded with a 1 MiB file limit:\n{err}");
    assert!(temporaries(&run_dir).is_empty(), "left behind: {:?}", temporaries(&run_dir));
    assert_eq!(latest(&run_dir)?, before, "the newest checkpoint changed");
    // The previous checkpoint is usable: resuming from it completes the straight run exactly.
    run_ok(&["finetune", "--resume", s(&run_dir), "--epochs", "2"])?;
    assert_eq!(step_losses(&run_dir)?, step_losses(&straight)?);
    same_checkpoint(&run_dir, &straight)?;
    assert!(err.contains("step 4") && err.contains(s(&run_dir)), "the error names neither step 4 nor the path:\n{err}");
    Ok(())
}

// ---------------------------------------------------------------- pretraining

fn sample_manifest() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data-manifests/sample.tsv")
}

/// The sample preset on the shipped sample, 4 steps, a checkpoint every 2 steps.
fn pretrain_args(manifest: &Path, out: &Path, steps: &str) -> Vec<String> {
    [
        "pretrain", "--preset", "sample", "--manifest", s(manifest), "--output", s(out), "--max-steps", steps, "--quiet",
        "--set", "checkpoint.every_steps=2", "--set", "data.threads=1",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect()
}

/// Epoch lines of a run: (epoch, steps in the epoch, mean loss bits).
fn epoch_lines(run: &Path) -> Result<Vec<(u64, u64, u64)>, Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(run.join("log.jsonl"))?;
    let mut out = Vec::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line)?;
        if v["kind"] == "epoch" {
            let f = |k: &str| v[k].as_u64().ok_or_else(|| format!("epoch record without {k}"));
            out.push((f("epoch")?, f("steps")?, v["loss_mean"].as_f64().ok_or("no loss_mean")?.to_bits()));
        }
    }
    Ok(out)
}

/// Killed in the middle of a 3D epoch (after its checkpoint at step 4) and resumed: the log
/// holds every step once and the summary of the interrupted epoch covers all its steps (the
/// ones before the kill too), as in a straight run.
#[test]
fn pretrain_mid_epoch_resume_logs_each_step_once_and_whole_epochs() -> Res {
    let tmp = tempfile::tempdir()?;
    let straight = tmp.path().join("straight");
    run_ok(&strs(&pretrain_args(&sample_manifest(), &straight, "5")))?;
    let a = tmp.path().join("killed");
    let mut child = spawn(&strs(&pretrain_args(&sample_manifest(), &a, "5")))?;
    let ck4 = a.join("checkpoints").join("ckpt-00000004");
    let hit = kill_when(&mut child, Duration::from_secs(600), || latest(&a).is_ok_and(|l| l == ck4) && records(&a, "step") >= 4)?;
    assert!(hit, "the run finished before the kill point");
    run_ok(&["pretrain", "--resume", s(&a), "--max-steps", "5", "--quiet"])?;
    assert_eq!(step_losses(&a)?, step_losses(&straight)?, "each step once, with the straight run's losses");
    let (ea, es) = (epoch_lines(&a)?, epoch_lines(&straight)?);
    assert_eq!(ea.len(), 2, "two epochs (2D, 3D): {ea:?}");
    assert_eq!(ea[1].1, 3, "the resumed 3D epoch's summary covers its 3 steps: {ea:?}");
    assert_eq!(ea, es, "epoch summaries differ from the straight run");
    Ok(())
}

#[test]
fn pretrain_kill9_then_resume_matches_a_straight_run() -> Res {
    let tmp = tempfile::tempdir()?;
    let straight = tmp.path().join("straight");
    run_ok(&strs(&pretrain_args(&sample_manifest(), &straight, "4")))?;
    assert_eq!(step_losses(&straight)?.len(), 4);
    let a = tmp.path().join("killed");
    let mut child = spawn(&strs(&pretrain_args(&sample_manifest(), &a, "4")))?;
    let hit = kill_when(&mut child, Duration::from_secs(600), || records(&a, "step") >= 3 && latest(&a).is_ok())?;
    assert!(hit, "the run finished before the kill point");
    run_ok(&["pretrain", "--resume", s(&a), "--max-steps", "4", "--quiet"])?;
    assert!(temporaries(&a).is_empty(), "left behind: {:?}", temporaries(&a));
    assert_eq!(step_losses(&a)?, step_losses(&straight)?, "losses after kill -9 and --resume");
    same_checkpoint(&a, &straight)?;
    Ok(())
}

#[test]
fn pretrain_bad_inputs_stop_or_are_skipped_before_training() -> Res {
    let tmp = tempfile::tempdir()?;
    let sample = sample_manifest();
    let base = sample.parent().ok_or("no parent")?;
    let mut text = String::new();
    for line in std::fs::read_to_string(&sample)?.lines() {
        let mut cols: Vec<String> = line.split('\t').map(String::from).collect();
        if cols.len() > 1 && !line.starts_with('#') && !line.starts_with("path\t") {
            cols[0] = base.join(&cols[0]).to_string_lossy().into_owned();
        }
        text.push_str(&cols.join("\t"));
        text.push('\n');
    }
    let corrupt = tmp.path().join("corrupt.nii.gz");
    std::fs::write(&corrupt, b"not a volume")?;
    text.push_str("missing.png\t2d\n");
    text.push_str(&format!("{}\t3d\n", corrupt.display()));
    let n = text.lines().count();
    let bad = tmp.path().join("bad.tsv");
    std::fs::write(&bad, &text)?;

    let out = tmp.path().join("stop");
    let res = run(&strs(&pretrain_args(&bad, &out, "1")))?;
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(!res.status.success(), "pretraining ran on a missing and a corrupt file:\n{err}");
    assert!(err.contains(&format!("bad.tsv:{}", n - 1)) && err.contains("missing.png"), "{err}");
    assert!(err.contains(&format!("bad.tsv:{n}")) && err.contains("corrupt.nii.gz"), "{err}");
    assert!(records(&out, "step") == 0 && !out.join("checkpoints").exists(), "training started");

    let out = tmp.path().join("skip");
    let mut args = pretrain_args(&bad, &out, "1");
    args.extend(["--set".to_string(), "data.on_bad_sample=skip".to_string()]);
    let res = run_ok(&strs(&args))?;
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(err.contains("missing.png") && err.contains("corrupt.nii.gz"), "the skipped entries are not printed:\n{err}");
    let skipped = std::fs::read_to_string(out.join("skipped.tsv"))?;
    assert_eq!(skipped.lines().count(), 3, "{skipped}");
    assert_eq!(records(&out, "step"), 1);
    Ok(())
}

#[test]
fn pretrain_disk_full_during_checkpoint_keeps_the_previous_one() -> Res {
    let tmp = tempfile::tempdir()?;
    let run_dir = tmp.path().join("full");
    run_ok(&strs(&pretrain_args(&sample_manifest(), &run_dir, "2")))?;
    let before = latest(&run_dir)?;
    let res = run_fsize_limited(1024, &["pretrain", "--resume", s(&run_dir), "--max-steps", "4", "--quiet"])?;
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(!res.status.success(), "the run succeeded with a 1 MiB file limit:\n{err}");
    assert!(err.contains("step 4") && err.contains(s(&run_dir)), "the error names neither step 4 nor the path:\n{err}");
    assert!(temporaries(&run_dir).is_empty(), "left behind: {:?}", temporaries(&run_dir));
    assert_eq!(latest(&run_dir)?, before, "the newest checkpoint changed");
    let straight = tmp.path().join("straight");
    run_ok(&strs(&pretrain_args(&sample_manifest(), &straight, "4")))?;
    run_ok(&["pretrain", "--resume", s(&run_dir), "--max-steps", "4", "--quiet"])?;
    assert_eq!(step_losses(&run_dir)?, step_losses(&straight)?);
    same_checkpoint(&run_dir, &straight)?;
    Ok(())
}
