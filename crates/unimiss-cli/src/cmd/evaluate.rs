//! `cargo xtask evaluate --task … --weights FILE --test M --json OUT`: metrics of fine-tuned
//! weights on a labelled manifest (aggregates and per-case rows) as JSON. Classification prints
//! accuracy, AUC, AP, sensitivity and specificity (with a warning when AUC is undefined);
//! segmentation prints Dice and HD95 per class and their means.

use std::path::PathBuf;

use anyhow::Context;
use unimiss_tasks::nets::Task;

#[derive(clap::Args)]
pub struct Args {
    /// The task the weights were fine-tuned for (checked against the weight file).
    #[arg(long)]
    pub task: Task,
    /// A task weight file written by `finetune` (e.g. DIR/best.safetensors).
    #[arg(long)]
    pub weights: PathBuf,
    /// Labelled test manifest.
    #[arg(long)]
    pub test: PathBuf,
    /// JSON report to write.
    #[arg(long)]
    pub json: PathBuf,
    /// `cpu` or `cuda:N`.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let dev = unimiss_ssl::trainer::parse_device(&args.device)?;
    let report = unimiss_tasks::evaluate::evaluate(&args.weights, &args.test, &dev)?;
    let task = report["task"].as_str().unwrap_or_default().to_string();
    anyhow::ensure!(task == args.task.name(), "{}: weights are for {task}, not {}", args.weights.display(), args.task);
    std::fs::write(&args.json, serde_json::to_string_pretty(&report)?).with_context(|| format!("writing {}", args.json.display()))?;
    for w in report["warnings"].as_array().into_iter().flatten() {
        eprintln!("warning: {}", w.as_str().unwrap_or_default());
    }
    let f = |v: &serde_json::Value| v.as_f64().map(|v| format!("{v:.4}")).unwrap_or_else(|| "n/a".into());
    if args.task.is_segmentation() {
        let unit = report["hd95_unit"].as_str().unwrap_or_default();
        let cases = report["cases"].as_array().map_or(0, Vec::len);
        println!("evaluate {} on {cases} cases: dice mean {}, hd95 mean {} {unit}", args.task, f(&report["dice_mean"]), f(&report["hd95_mean"]));
        // class order of the weights (the JSON objects are sorted by name)
        for class in report["classes"].as_array().into_iter().flatten().filter_map(|c| c.as_str()) {
            if let Some(dice) = report["dice"].get(class) {
                println!("  {class:<12} dice {}  hd95 {} {unit}", f(dice), f(&report["hd95"][class]));
            }
        }
        let nulls = report["hd95_null_count"].as_u64().unwrap_or(0);
        if nulls > 0 {
            println!("  hd95 undefined (empty prediction or ground truth) for {nulls} case×class pairs, left out of the means");
        }
        println!("-> {}", args.json.display());
        return Ok(());
    }
    println!(
        "evaluate {}: accuracy {}, auc {}, ap {}, sensitivity {}, specificity {} -> {}",
        args.task,
        f(&report["accuracy"]),
        f(&report["auc"]),
        f(&report["ap"]),
        f(&report["sensitivity"]),
        f(&report["specificity"]),
        args.json.display()
    );
    Ok(())
}
