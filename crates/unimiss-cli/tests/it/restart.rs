//! Interrupted and extended runs through the binary (issue 20): a run stopped in its first epoch
//! (no checkpoint yet) starts again from step 0, by the same command or by `--resume`; what is
//! not a run is named and kept; `--resume --epochs N` continues the decayed learning-rate
//! schedule; what a finished run keeps on disk; the inputs that one verb took and another
//! refused.

use std::path::Path;
use std::time::Duration;

use crate::bin::{Res, finetune_ci, kill_when, latest, log_records, phantoms, records, run, run_err, run_ok, s, spawn, strs};

/// Killed after its first step, long before the end of epoch 1 (200 steps): no checkpoint.
fn stopped_in_epoch_one(args: &[String], run: &Path) -> Res {
    let mut child = spawn(&strs(args))?;
    let hit = kill_when(&mut child, Duration::from_secs(600), || records(run, "step") >= 1)?;
    assert!(hit, "the run ended before it was stopped");
    assert!(latest(run).is_err(), "a checkpoint was written in epoch 1");
    Ok(())
}

#[test]
fn a_run_stopped_in_its_first_epoch_starts_again_from_step_0() -> Res {
    let ph = phantoms()?;
    let dir = ph.root.join("int_early");
    let long = finetune_ci(&ph, "cls2d", &dir, 1, 200, &[]);
    stopped_in_epoch_one(&long, &dir)?;
    // The log of the stopped run draws (step records only: no `batch` field, no epoch).
    run_ok(&["plot", s(&dir), "--out", s(&ph.root.join("early.png"))])?;
    // The same command again (shorter here) takes the directory and says why.
    let out = run_ok(&strs(&finetune_ci(&ph, "cls2d", &dir, 1, 2, &[])))?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("stopped before its first checkpoint") && err.contains("step 0"), "{err}");
    assert_eq!(log_records(&dir, "step")?.iter().map(|v| v["step"].as_u64()).collect::<Vec<_>>(), [Some(1), Some(2)], "a fresh log");
    assert!(latest(&dir).is_ok() && dir.join("best.safetensors").is_file());

    // --resume of a run without a checkpoint runs its stored job from step 0 (flags still apply).
    let dir2 = ph.root.join("int_early_resume");
    stopped_in_epoch_one(&finetune_ci(&ph, "cls2d", &dir2, 1, 200, &[]), &dir2)?;
    let out = run_ok(&["finetune", "--resume", s(&dir2), "--set", "iters_per_epoch=2"])?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("starts again from step 0"), "{err}");
    assert_eq!(log_records(&dir2, "step")?.len(), 2);
    assert_eq!(log_records(&dir2, "epoch")?.len(), 1);
    Ok(())
}

#[test]
fn what_is_not_a_run_is_named_and_kept() -> Res {
    let ph = phantoms()?;
    let notes = ph.root.join("notes");
    std::fs::create_dir_all(&notes)?;
    std::fs::write(notes.join("notes.txt"), "mine")?;
    let err = run_err(&strs(&finetune_ci(&ph, "cls2d", &notes, 1, 2, &[])))?;
    assert!(err.contains("notes.txt is in the way") && err.contains("--output"), "{err}");
    assert_eq!(std::fs::read_to_string(notes.join("notes.txt"))?, "mine");
    assert_eq!(std::fs::read_dir(&notes)?.count(), 1);
    let err = run_err(&["finetune", "--resume", s(&notes)])?;
    assert!(err.contains("holds no run (notes.txt)"), "{err}");
    let plain = ph.root.join("plain");
    std::fs::write(&plain, "x")?;
    let err = run_err(&strs(&finetune_ci(&ph, "cls2d", &plain, 1, 2, &[])))?;
    assert!(err.contains("is a file, not a directory"), "{err}");
    Ok(())
}

#[test]
fn pretrain_resume_of_a_run_without_checkpoint_starts_it_again() -> Res {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("p");
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data-manifests/sample.tsv");
    // What a run stopped before its first checkpoint leaves: its configuration and a log line.
    run_ok(&["pretrain", "--preset", "sample", "--manifest", s(&manifest), "--output", s(&tmp.path().join("done")), "--max-steps", "1", "--quiet"])?;
    std::fs::create_dir_all(&dir)?;
    std::fs::copy(tmp.path().join("done/config.toml"), dir.join("config.toml"))?;
    std::fs::write(dir.join("log.jsonl"), "")?;
    let out = run_ok(&["pretrain", "--resume", s(&dir), "--max-steps", "1", "--quiet"])?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no checkpoint yet") && err.contains("step 0"), "{err}");
    assert!(latest(&dir).is_ok(), "the restarted run wrote its checkpoint into {}", dir.display());
    Ok(())
}

/// A run directory moved elsewhere resumes where it now is: the header names the new place,
/// the old place is not created again, and the TensorBoard events of the run are one file.
#[test]
fn a_moved_run_resumes_in_its_new_directory() -> Res {
    let tmp = tempfile::tempdir()?;
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data-manifests/sample.tsv");
    let (old, new) = (tmp.path().join("old"), tmp.path().join("moved"));
    run_ok(&["pretrain", "--preset", "sample", "--manifest", s(&manifest), "--output", s(&old), "--max-steps", "3", "--quiet"])?;
    std::fs::rename(&old, &new)?;
    let out = run_ok(&["pretrain", "--resume", s(&new), "--max-steps", "4", "--quiet"])?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("→ {}", new.display())), "the header does not name the new place:\n{err}");
    assert!(!old.exists(), "the old directory was created again");
    assert_eq!(records(&new, "step"), 4);
    let events = unimiss_runtime::tensorboard::event_files(&new)?;
    assert_eq!(events.len(), 1, "one TensorBoard file per run: {events:?}");
    Ok(())
}

/// 2 epochs of 4 steps, extended to 4 epochs: the rate keeps falling from where it was, to 0 at
/// the new end, instead of jumping to where a 4-epoch schedule would be.
#[test]
fn resume_with_more_epochs_continues_the_decayed_schedule() -> Res {
    let ph = phantoms()?;
    let dir = ph.root.join("extend");
    run_ok(&strs(&finetune_ci(&ph, "cls2d", &dir, 2, 4, &[])))?;
    let out = run_ok(&["finetune", "--resume", s(&dir), "--epochs", "4"])?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("continues from lr") && err.contains("does not restart"), "{err}");
    let lrs: Vec<f64> = log_records(&dir, "step")?.iter().filter_map(|v| v["lr"].as_f64()).collect();
    assert_eq!(lrs.len(), 16);
    assert!(lrs.windows(2).all(|w| w[1] < w[0]), "the rate must fall at every step: {lrs:?}");
    // Continuous: the first extended step falls by about as much as the last steps before it.
    let (before, after) = (lrs[6] - lrs[7], lrs[7] - lrs[8]);
    assert!(after > 0.0 && after < before, "jump at the resume: {lrs:?}");
    // Poly 0.9 over the 9 steps from the anchor: the last is (1/9)^0.9 ≈ 0.14 of the anchor's.
    assert!(lrs[15] < 0.2 * lrs[7], "decays towards 0 at the new end: {lrs:?}");
    Ok(())
}

/// Bytes under `p` (`du -sb`).
fn bytes(p: &Path) -> u64 {
    let out = std::process::Command::new("du").args(["-sb", s(p)]).output().map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    out.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// A finished run keeps its last checkpoint (to be extended) or, with `finished_keep=best`, only
/// its best weights; curves are drawn after every epoch.
#[test]
fn a_finished_run_keeps_what_it_is_told() -> Res {
    let ph = phantoms()?;
    let (full, best) = (ph.root.join("keep_ckpt"), ph.root.join("keep_best"));
    let out = run_ok(&strs(&finetune_ci(&ph, "cls2d", &full, 3, 1, &[])))?;
    assert!(String::from_utf8_lossy(&out.stderr).contains("kept "), "the run says what it keeps");
    assert_eq!(std::fs::read_dir(full.join("checkpoints"))?.filter(|e| e.as_ref().is_ok_and(|e| e.path().is_dir())).count(), 1);
    run_ok(&strs(&finetune_ci(&ph, "cls2d", &best, 3, 1, &["--set", "finished_keep=best", "--set", "keep_checkpoints=1"])))?;
    assert!(!best.join("checkpoints").exists() && best.join("best.safetensors").is_file() && best.join("curves.png").is_file());
    eprintln!("disk: finished_keep=checkpoint {} bytes, finished_keep=best {} bytes", bytes(&full), bytes(&best));
    assert!(bytes(&best) * 2 < bytes(&full));
    // A run kept as best weights only is still a run: a new run does not take its directory.
    let err = run_err(&strs(&finetune_ci(&ph, "cls2d", &best, 1, 1, &[])))?;
    assert!(err.contains("already holds a run"), "{err}");
    let err = run_err(&["finetune", "--resume", s(&best), "--epochs", "4"])?;
    assert!(err.contains("finished_keep = best"), "{err}");
    // Two runs on one figure.
    let cmp = ph.root.join("cmp.png");
    run_ok(&["plot", s(&full), s(&best), "--out", s(&cmp)])?;
    assert!(std::fs::metadata(&cmp)?.len() > 1000);
    Ok(())
}

#[test]
fn inputs_one_verb_takes_the_others_take_or_explain() -> Res {
    let ph = phantoms()?;
    let tmp = ph.root.join("inputs");
    let mut typo = finetune_ci(&ph, "cls2d", &tmp.join("a"), 1, 1, &[]);
    let at = typo.iter().position(|a| a == "--config").ok_or("no --config")?;
    typo[at + 1] = "cii".into();
    let err = run_err(&strs(&typo))?;
    assert!(err.contains("`official` and `ci`"), "{err}");
    let err = run_err(&["pretrain", "--config", "ci"])?;
    assert!(err.contains("fine-tuning preset") && err.contains("--preset sample"), "{err}");
    let err = run_err(&strs(&finetune_ci(&ph, "cls2d", &tmp.join("b"), 1, 1, &["--set", "optim.lr=1e-3"])))?;
    assert!(err.contains("fine-tuning keys are") && err.contains("batch_size") && err.contains(" lr,"), "{err}");
    // --pretrained takes a pretraining run directory (its newest checkpoint).
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data-manifests/sample.tsv");
    let pre = tmp.join("pre");
    run_ok(&["pretrain", "--preset", "sample", "--manifest", s(&manifest), "--output", s(&pre), "--max-steps", "1", "--quiet"])?;
    let ft = tmp.join("from_run_dir");
    run_ok(&strs(&finetune_ci(&ph, "cls2d", &ft, 1, 1, &["--pretrained", s(&pre)])))?;
    assert!(std::fs::read_to_string(ft.join("pretrained.txt"))?.contains("loaded"));
    let err = run_err(&strs(&finetune_ci(&ph, "cls2d", &tmp.join("c"), 1, 1, &["--pretrained", s(&ph.root.join("ct"))])))?;
    assert!(err.contains("a directory without a checkpoint"), "{err}");
    assert!(run(&["finetune", "--resume", s(&tmp.join("nothing"))])?.status.code() == Some(1));
    Ok(())
}
