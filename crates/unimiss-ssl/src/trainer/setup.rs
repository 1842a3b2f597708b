//! Building a run: models, optimiser and loss, pre-flight of the manifest, loaders, schedules,
//! and the restore of a checkpoint on resume.

use super::*;

impl Trainer {
    /// Build the run: models (student initialised randomly or from `cfg.init`, teacher a copy),
    /// loaders, schedules; with `resume`, restore everything from that checkpoint.
    pub fn new(cfg: TrainConfig, resume: Option<&Path>, collective: Option<Box<dyn Collective>>) -> Result<Self> {
        cfg.validate()?;
        let dev = parse_device(&cfg.device)?;
        let (rank, world) = collective.as_ref().map_or((0, 1), |c| (c.rank(), c.world_size()));

        let mcfg = mit_config(&cfg)?;
        let hcfg = HeadConfig::new(mcfg.out_dim(), cfg.model.out_dim);
        let lcfg = cfg.loss.dino(cfg.model.out_dim);
        let mut engine = Engine::new(&mcfg, &hcfg, cfg.fixes.drop_path, lcfg, cfg.optim.epochs, cfg.seed, &dev)?;
        engine.precision = cfg.optim.precision;
        if let Some(init) = &cfg.init {
            engine.init_student_from(init)?;
        }
        if let Some(c) = &collective {
            c.broadcast(&engine.student_vars)?;
            engine.copy_student_to_teacher()?;
        }

        // A resumed run writes into the run directory it resumes from, wherever that now is.
        let run_dir = match resume {
            Some(r) => checkpoint::run_dir_of(r)?,
            None => cfg.output.clone(),
        };
        let manifest = preflight(&cfg, &run_dir, rank == 0)?;
        let n_global = PerModality::from_fn(|m| manifest.of_modality(m).len());
        let preview = Modality::ALL.into_iter().flat_map(|m| manifest.of_modality(m).into_iter().take(2)).collect();
        let loaders = PerModality::try_from_fn(|m| -> Result<PairLoader> {
            let all = manifest.of_modality(m);
            if all.is_empty() {
                return Err(SslError::Config(format!(
                    "{}: no {m} samples; UniMiSS pretraining needs both 2D images and 3D volumes",
                    cfg.data.manifest.display()
                )));
            }
            // Every rank gets the same number of samples (the remainder is left out, as
            // drop_last), so every rank runs the same number of steps: a rank with one batch more
            // would wait in an all-reduce the others never join.
            let batch_size = cfg.optim.batch_size_of(m);
            let per_rank = all.len() / world;
            if per_rank < batch_size {
                return Err(SslError::Config(format!(
                    "{}: {} {m} samples over {world} ranks is fewer than one batch of {} per rank",
                    cfg.data.manifest.display(),
                    all.len(),
                    batch_size
                )));
            }
            let shard: Vec<_> =
                all.into_iter().enumerate().filter(|(j, _)| j % world == rank).map(|(_, s)| s).take(per_rank).collect();
            let lc = LoaderConfig {
                batch_size,
                seed: cfg.seed,
                threads: cfg.data.threads.max(1),
                prefetch: cfg.data.prefetch.max(1),
                on_bad_sample: cfg.data.on_bad_sample,
                size_2d: cfg.model.img_size_2d,
                size_3d: cfg.model.img_size_3d,
            };
            Ok(PairLoader::new(shard, lc)?)
        })?;

        let sp = ScheduleParams {
            epochs: cfg.optim.epochs,
            peak_lr: scaled_lr(cfg.optim.lr, cfg.optim.batch_size, world),
            min_lr: cfg.optim.min_lr,
            warmup_epochs: cfg.optim.warmup_epochs,
            weight_decay: cfg.optim.weight_decay,
            weight_decay_end: cfg.optim.weight_decay_end,
            momentum_teacher: cfg.optim.momentum_teacher,
            momentum_teacher_end: cfg.optim.momentum_teacher_end,
        };
        let indexing = if cfg.fixes.per_batch_schedule {
            Indexing::PerBatch(loaders.map(PairLoader::batches_per_epoch))
        } else {
            Indexing::Official(n_global)
        };
        let schedules = Schedules::new(&sp, indexing);
        let mut pos = Position { epoch: 0, batch: 0, step: 0 };
        let mut cfg = cfg;
        cfg.output = run_dir.clone();
        if let Some(r) = resume {
            let ck = checkpoint::load(r, &dev)?;
            let state: CkptState = ck.state()?;
            ck.restore_set("student", &engine.student_vars)?;
            ck.restore_set("teacher", &engine.teacher_vars)?;
            ck.restore_optim(&mut engine.optim)?;
            engine.loss.set_center(ck.extra("center")?)?;
            pos = state.position;
            let phase = modality_of(pos.epoch, cfg.optim.interval);
            if phase != state.phase {
                return Err(SslError::Checkpoint {
                    path: ck.dir,
                    msg: format!(
                        "epoch {} is {} with interval {} but the checkpoint was written in a {} epoch",
                        pos.epoch,
                        phase.name(),
                        cfg.optim.interval,
                        state.phase.name()
                    ),
                });
            }
        }
        let eval_set = match cfg.eval.enabled() {
            true => Some(EvalSet::load(&cfg.eval.manifest, cfg.model.img_size_2d, cfg.model.img_size_3d, &dev)?),
            false => None,
        };
        let watch = CollapseWatch::new(cfg.model.out_dim);
        Ok(Self {
            cfg,
            run_dir,
            engine,
            schedules,
            loaders,
            pos,
            resumed: resume.is_some(),
            preview,
            epoch_iter: None,
            stats: EpochStats::default(),
            watch,
            collective,
            eval_set,
            progress: true,
        })
    }
}

/// Check every manifest entry before the first step (in parallel): stop with the list of
/// problems (file and line), or with `data.on_bad_sample = "skip"` print it, write it to
/// `RUN_DIR/skipped.tsv` and leave those entries out.
fn preflight(cfg: &TrainConfig, run_dir: &Path, writer: bool) -> Result<Manifest> {
    let (manifest, report) = unimiss_data::preflight::read_checked(&cfg.data.manifest)?;
    if report.is_clean() {
        return Ok(manifest);
    }
    if cfg.data.on_bad_sample == OnBadSample::Fail {
        return Err(SslError::Preflight(report.to_string()));
    }
    if writer {
        eprintln!("warning: {report}\nthese entries are left out (data.on_bad_sample = \"skip\")");
        std::fs::create_dir_all(run_dir).map_err(io_err(run_dir))?;
        report.write_tsv(run_dir.join("skipped.tsv"))?;
    }
    Ok(report.retain_clean(&manifest))
}

/// The model configuration of a run.
pub fn mit_config(cfg: &TrainConfig) -> Result<MitConfig> {
    MitConfig::for_run(cfg.model.arch, cfg.model.img_size_2d, cfg.model.img_size_3d).map_err(|e| SslError::Config(e.to_string()))
}
