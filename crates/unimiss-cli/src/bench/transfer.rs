//! `cargo xtask bench transfer [--json FILE]`: does pretraining help? On the phantoms, at equal
//! fine-tuning budget: a MiT pretrained with `pretrain` on the unlabelled phantom training split
//! versus random initialisation, each fine-tuned with the same preset, seed and number of steps
//! and evaluated on the test split.
//!
//! Steps (each a subprocess of this binary, so the run is exactly what users get):
//! 1. `phantoms --out DIR/phantoms --seed S --count N`;
//! 2. `pretrain --manifest DIR/phantoms/pretrain.tsv --output DIR/pretrain --epochs E`
//!    (the `sample` preset: tiny MiT at 64² / 16×64×64);
//! 3. for each task and each initialisation: `finetune --config ci --epochs F` then `evaluate`.
//!
//! By default the comparison runs on `seg3d` (test mean Dice) and `cls2d` (test AUC/accuracy).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;

#[derive(clap::Args)]
pub struct Args {
    /// Working directory (phantoms, pretraining run, fine-tuning runs).
    #[arg(long, default_value = "runs/bench-transfer")]
    pub dir: PathBuf,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Phantom cases (60 % train, 20 % val, 20 % test).
    #[arg(long, default_value_t = 40)]
    pub count: usize,
    /// Pretraining epochs.
    #[arg(long, default_value_t = 4)]
    pub pretrain_epochs: usize,
    /// Fine-tuning epochs (same for both initialisations).
    #[arg(long, default_value_t = 6)]
    pub epochs: usize,
    /// Tasks to compare.
    #[arg(long, value_delimiter = ',', default_value = "seg3d,cls2d")]
    pub tasks: Vec<String>,
    /// Reuse an existing pretraining checkpoint (weights.safetensors of a run) instead of step 2.
    #[arg(long)]
    pub pretrained: Option<PathBuf>,
    /// Write the results as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

fn unimiss(args: &[&str]) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("locating the unimiss binary")?;
    eprintln!("bench transfer: unimiss {}", args.join(" "));
    let status = Command::new(&exe).args(args).status().with_context(|| format!("running {}", exe.display()))?;
    anyhow::ensure!(status.success(), "unimiss {} failed: {status}", args.join(" "));
    Ok(())
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// The newest pretraining weights of a run directory.
fn latest_weights(run: &Path) -> anyhow::Result<PathBuf> {
    let ck = run.join("checkpoints");
    let name = std::fs::read_to_string(ck.join("latest")).with_context(|| format!("reading {}", ck.join("latest").display()))?;
    let w = ck.join(name.trim()).join("weights.safetensors");
    anyhow::ensure!(w.exists(), "{} does not exist", w.display());
    Ok(w)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let t0 = std::time::Instant::now();
    let ph = args.dir.join("phantoms");
    unimiss(&["phantoms", "--out", &s(&ph), "--seed", &args.seed.to_string(), "--count", &args.count.to_string()])?;
    let pretrained = match &args.pretrained {
        Some(p) => p.clone(),
        None => {
            let run = args.dir.join("pretrain");
            unimiss(&[
                "pretrain",
                "--manifest",
                &s(&ph.join("pretrain.tsv")),
                "--output",
                &s(&run),
                "--epochs",
                &args.pretrain_epochs.to_string(),
                "--quiet",
            ])?;
            latest_weights(&run)?
        }
    };
    let t_pre = t0.elapsed().as_secs_f64();
    let mut rows = Vec::new();
    for task in &args.tasks {
        for (init, weights) in [("pretrained", Some(&pretrained)), ("random", None)] {
            let out = args.dir.join(format!("{task}-{init}"));
            let _ = std::fs::remove_dir_all(&out);
            let mut a = vec![
                "finetune".to_string(),
                "--task".into(),
                task.clone(),
                "--train".into(),
                s(&ph.join(format!("{task}_train.tsv"))),
                "--val".into(),
                s(&ph.join(format!("{task}_val.tsv"))),
                "--config".into(),
                "ci".into(),
                "--epochs".into(),
                args.epochs.to_string(),
                "--output".into(),
                s(&out),
            ];
            if let Some(w) = weights {
                a.push("--pretrained".into());
                a.push(s(w));
            }
            let t = std::time::Instant::now();
            unimiss(&a.iter().map(String::as_str).collect::<Vec<_>>())?;
            let secs = t.elapsed().as_secs_f64();
            let json = out.join("test.json");
            unimiss(&[
                "evaluate",
                "--task",
                task.as_str(),
                "--weights",
                &s(&out.join("best.safetensors")),
                "--test",
                &s(&ph.join(format!("{task}_test.tsv"))),
                "--json",
                &s(&json),
            ])?;
            let rep: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json)?)?;
            rows.push(serde_json::json!({
                "task": task, "init": init, "finetune_s": secs, "epochs": args.epochs,
                "accuracy": rep["accuracy"], "auc": rep["auc"], "ap": rep["ap"], "dice_mean": rep["dice_mean"],
            }));
        }
    }
    println!("bench transfer (phantoms: {} cases, seed {}; pretraining {:.0} s; fine-tuning {} epochs, preset ci)", args.count, args.seed, t_pre, args.epochs);
    println!("{:<7} {:<11} {:>9} {:>7} {:>7} {:>9} {:>10}", "task", "init", "accuracy", "auc", "ap", "dice_mean", "finetune s");
    let f = |v: &serde_json::Value| v.as_f64().map(|x| format!("{x:.3}")).unwrap_or_else(|| "n/a".into());
    for r in &rows {
        println!(
            "{:<7} {:<11} {:>9} {:>7} {:>7} {:>9} {:>10.0}",
            r["task"].as_str().unwrap_or(""),
            r["init"].as_str().unwrap_or(""),
            f(&r["accuracy"]),
            f(&r["auc"]),
            f(&r["ap"]),
            f(&r["dice_mean"]),
            r["finetune_s"].as_f64().unwrap_or(0.0)
        );
    }
    if let Some(j) = &args.json {
        let v = serde_json::json!({"count": args.count, "seed": args.seed, "pretrain_epochs": args.pretrain_epochs, "epochs": args.epochs, "pretrained": s(&pretrained), "results": rows});
        std::fs::write(j, serde_json::to_string_pretty(&v)?).with_context(|| format!("writing {}", j.display()))?;
    }
    Ok(())
}
