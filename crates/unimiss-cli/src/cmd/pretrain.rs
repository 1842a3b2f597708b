//! `cargo xtask pretrain`: UniMiSS self-distillation pretraining.
//!
//! With no arguments: the `sample` preset on `data-manifests/sample.tsv` into `runs/sample/`
//! (a few minutes on 2 cores). `--preset paper` (or `--config configs/paper.toml`) is the
//! paper's recipe. Multi-GPU: one process per GPU with `RANK`, `WORLD_SIZE`, `LOCAL_RANK` set
//! (binary built with `--nccl`).

use std::path::{Path, PathBuf};

use anyhow::Context;
use unimiss_ssl::TrainConfig;

#[derive(clap::Args)]
pub struct Args {
    /// TOML configuration (fields left out take the paper defaults; see configs/).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Built-in preset when no --config is given: sample (default), paper or small-batch.
    #[arg(long)]
    preset: Option<String>,
    /// Continue a run: its directory (newest checkpoint) or one checkpoint directory. The
    /// checkpoint's configuration is used unless --config/--preset is given; flags still apply.
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Run directory (checkpoints, log.jsonl, loss.png). It must not hold another run; without
    /// --output the default sample run moves on to the first free runs/sample-N.
    #[arg(long)]
    output: Option<PathBuf>,
    /// cpu or cuda:N.
    #[arg(long)]
    device: Option<String>,
    #[arg(long)]
    epochs: Option<usize>,
    /// Per device.
    #[arg(long)]
    batch_size: Option<usize>,
    /// Data manifest (TSV).
    #[arg(long)]
    manifest: Option<PathBuf>,
    /// Seed of the initialisation, data order and augmentations.
    #[arg(long)]
    seed: Option<u64>,
    /// Stop after this many steps in total (a checkpoint is written there).
    #[arg(long)]
    max_steps: Option<u64>,
    /// Override any field: --set optim.lr=5e-4 --set fixes.per_batch_schedule=true
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// No progress bar (one line per epoch).
    #[arg(long)]
    quiet: bool,
}

fn root() -> Option<PathBuf> {
    std::env::var_os("UNIMISS_ROOT").map(PathBuf::from)
}

/// A relative path that does not exist here but does under `UNIMISS_ROOT`.
fn under_root(p: &Path) -> PathBuf {
    match root() {
        Some(r) if p.is_relative() && !p.exists() && r.join(p).exists() => r.join(p),
        _ => p.to_path_buf(),
    }
}

/// The file `--config` names; a name that is no file but a preset gets a message naming the
/// presets (`--preset sample|paper` here; `ci`/`official` are fine-tuning presets).
fn config_file(path: &Path) -> anyhow::Result<PathBuf> {
    let p = under_root(path);
    if p.is_file() {
        return Ok(p);
    }
    let name = path.to_string_lossy();
    let hint = match name.as_ref() {
        "sample" | "paper" | "small-batch" => format!("`{name}` is a pretraining preset: use `--preset {name}`"),
        "ci" | "official" => format!("`{name}` is a fine-tuning preset (`finetune --config {name}`); pretraining presets are `--preset sample`, `--preset paper` and `--preset small-batch`"),
        _ => "pretraining presets are `--preset sample`, `--preset paper` and `--preset small-batch`; --config takes a TOML file (see configs/)".into(),
    };
    anyhow::bail!("--config {}: no such file; {hint}", path.display())
}

/// `--resume DIR` of a run that stopped before its first checkpoint: nothing to resume, so the
/// run starts again from step 0 in DIR with the configuration it wrote (`DIR/config.toml`),
/// and says so. A run with a checkpoint is left to the ordinary resume.
fn restart_unfinished(args: &mut Args) -> anyhow::Result<()> {
    use unimiss_runtime::rundir::{Holds, holds};
    let Some(dir) = args.resume.clone() else { return Ok(()) };
    match holds(&dir)? {
        Holds::Unfinished(files) if dir.join("config.toml").is_file() => {
            eprintln!(
                "{} has no checkpoint yet (the run stopped in its first epoch; it holds {}): starting it again from step 0 with its config.toml",
                dir.display(),
                files.join(", ")
            );
            if args.config.is_none() && args.preset.is_none() {
                args.config = Some(dir.join("config.toml"));
            }
            args.output = Some(dir);
            args.resume = None;
            Ok(())
        }
        Holds::Unfinished(files) => {
            anyhow::bail!("--resume {}: no checkpoint and no config.toml there ({}); start the run again with --output", dir.display(), files.join(", "))
        }
        Holds::Nothing => anyhow::bail!("--resume {}: no such run directory (or it is empty)", dir.display()),
        Holds::Run | Holds::Other(_) => Ok(()),
    }
}

/// The configuration these arguments describe.
pub fn resolve_config(args: &Args) -> anyhow::Result<TrainConfig> {
    let mut cfg = match (&args.config, &args.preset, &args.resume) {
        (Some(path), _, _) => TrainConfig::load(&config_file(path)?)?,
        (None, Some(p), _) => TrainConfig::preset(p)?,
        (None, None, Some(r)) => {
            let dir = unimiss_runtime::checkpoint::resolve(r)?;
            let text = std::fs::read_to_string(dir.join("state.json"))
                .with_context(|| format!("reading {}", dir.join("state.json").display()))?;
            let state: unimiss_ssl::CkptState = serde_json::from_str(&text)?;
            state.config
        }
        (None, None, None) => {
            let mut c = TrainConfig::sample();
            // The default run directory lives in the repository, wherever we are called from.
            if let Some(r) = root() {
                c.output = r.join(&c.output);
            }
            c
        }
    };
    if let Some(v) = &args.output {
        cfg.output = v.clone();
    } else if let Some(r) = &args.resume {
        // A resumed run writes where its checkpoint is now (a moved run directory included),
        // never into the directory its stored configuration names.
        cfg.output = unimiss_runtime::checkpoint::run_dir_of(r)?;
    }
    if let Some(v) = &args.device {
        cfg.device = v.clone();
    }
    if let Some(v) = args.epochs {
        cfg.optim.epochs = v;
    }
    if let Some(v) = args.batch_size {
        cfg.optim.batch_size = v;
    }
    if let Some(v) = &args.manifest {
        cfg.data.manifest = v.clone();
    }
    if let Some(v) = args.seed {
        cfg.seed = v;
    }
    if let Some(v) = args.max_steps {
        cfg.max_steps = v;
    }
    unimiss_runtime::overrides::apply_overrides(&mut cfg, &args.set)?;
    cfg.data.manifest = under_root(&cfg.data.manifest);
    cfg.validate()?;
    Ok(cfg)
}

#[cfg(feature = "nccl")]
fn collective(cfg: &mut TrainConfig) -> anyhow::Result<Option<Box<dyn unimiss_ssl::Collective>>> {
    let Some(env) = unimiss_ssl::trainer::DistEnv::from_env()? else { return Ok(None) };
    cfg.device = format!("cuda:{}", env.local_rank);
    let dev = unimiss_runtime::device::parse_device(&cfg.device)?;
    let id_file = std::env::var_os("UNIMISS_NCCL_ID_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| cfg.output.join(".nccl-id"));
    Ok(Some(Box::new(unimiss_ssl::dist::Nccl::new(&env, &dev, &id_file)?)))
}

#[cfg(not(feature = "nccl"))]
fn collective(_cfg: &mut TrainConfig) -> anyhow::Result<Option<Box<dyn unimiss_ssl::Collective>>> {
    if unimiss_ssl::trainer::DistEnv::from_env()?.is_some() {
        anyhow::bail!("WORLD_SIZE is set: multi-GPU training needs the binary built with `cargo xtask --nccl pretrain …`");
    }
    Ok(None)
}

/// Apply the run-directory rule (one run per directory, `unimiss_runtime::rundir`) on the process
/// that writes (rank 0): the default sample run moves on to a fresh `runs/sample-N` and says so.
fn claim_output(args: &Args, cfg: &mut TrainConfig) -> anyhow::Result<()> {
    use unimiss_runtime::rundir::{Claim, claim};
    let dist = unimiss_ssl::trainer::DistEnv::from_env()?;
    if dist.is_some_and(|d| d.rank != 0) {
        return Ok(());
    }
    let default_dir = args.output.is_none() && args.config.is_none();
    let how = match &args.resume {
        Some(r) => Claim::Resume(r),
        // Ranks must agree on the directory, so a multi-process run never renumbers it.
        None if default_dir && dist.is_none() => Claim::NewOrNext,
        None => Claim::New,
    };
    let claimed = claim(&cfg.output, how)?;
    if let Some(note) = claimed.note() {
        eprintln!("{note}");
    }
    let dir = claimed.dir;
    if dir != cfg.output {
        eprintln!(
            "{} holds an earlier run (continue it with --resume {}); this run goes to {}",
            cfg.output.display(),
            cfg.output.display(),
            dir.display()
        );
        cfg.output = dir;
    }
    Ok(())
}

pub fn run(mut args: Args) -> anyhow::Result<()> {
    restart_unfinished(&mut args)?;
    let mut cfg = resolve_config(&args)?;
    claim_output(&args, &mut cfg)?;
    let coll = collective(&mut cfg)?;
    eprintln!(
        "pretraining {} ({}), {} epochs, batch {}, interval {}, on {} → {}",
        cfg.model.arch,
        cfg.data.manifest.display(),
        cfg.optim.epochs,
        cfg.optim.batch_size,
        cfg.optim.interval,
        cfg.device,
        cfg.output.display()
    );
    let mut trainer = unimiss_ssl::Trainer::new(cfg, args.resume.as_deref(), coll)?;
    trainer.progress = !args.quiet;
    if args.resume.is_some() {
        let p = trainer.position();
        eprintln!("resuming at epoch {}, batch {}, step {}", p.epoch, p.batch, p.step);
    }
    let summary = trainer.run()?;
    eprintln!(
        "done in {:.1}s: step {}, epoch {}; checkpoint {}",
        summary.seconds,
        summary.position.step,
        summary.position.epoch,
        summary.last_checkpoint.as_ref().map_or("-".into(), |p| p.display().to_string())
    );
    Ok(())
}
