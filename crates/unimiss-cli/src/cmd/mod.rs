//! One module per verb. Each module defines its clap `Args` struct and `run(args)`.
//! To add a verb: a module here, a variant in `Verb`, an arm in `run`.

pub mod bench;
pub mod convert;
pub mod data_files;
pub mod embed;
pub mod evaluate;
pub mod export;
pub mod extract_subvolumes;
pub mod finetune;
pub mod gpu_info;
pub mod phantoms;
pub mod plot;
pub mod predict;
pub mod pretrain;
pub mod preview;
pub mod resample;

/// Every verb of `cargo xtask`.
#[derive(clap::Subcommand)]
pub enum Verb {
    /// Benchmarks that print throughput (ops, model, data, train, transfer); `--json FILE` writes them.
    #[command(subcommand)]
    Bench(bench::Which),
    /// Convert a checkpoint (.pth or safetensors) to safetensors with official key names.
    Convert(convert::Args),
    /// Backbone (and head) outputs for every 2D/3D batch of a safetensors file, or one image.
    Embed(embed::Args),
    /// UniMiSS self-distillation pretraining (no arguments: the quick run on the shipped sample).
    Pretrain(pretrain::Args),
    /// Write the teacher backbone of a run (official keys) to a safetensors file.
    Export(export::Args),
    /// Render a run's log.jsonl to PNG.
    Plot(plot::Args),
    /// Resample NIfTI volumes to a voxel size (trilinear), e.g. `--spacing 1,1,3`.
    Resample(resample::Args),
    /// Cut CT volumes into the official depth-24 sub-volumes (`<stem>_dep<k>.nii.gz`).
    ExtractSubvolumes(extract_subvolumes::Args),
    /// A PNG grid of both augmented views of a few samples of a manifest.
    Preview(preview::Args),
    /// Fine-tune a (pretrained) MiT on a labelled manifest: --task cls3d|seg3d|cls2d|seg2d.
    Finetune(finetune::Args),
    /// Metrics of fine-tuned weights on a labelled test manifest, as JSON.
    Evaluate(evaluate::Args),
    /// Predictions of fine-tuned weights on an image, a volume or a directory.
    Predict(predict::Args),
    /// Generate the labelled synthetic CT / radiograph phantom benchmark.
    Phantoms(phantoms::Args),
    /// What the binary was built with, the CUDA device, and a first check that work runs on it.
    GpuInfo(gpu_info::Args),
}

pub fn run(verb: Verb) -> anyhow::Result<()> {
    match verb {
        Verb::Bench(w) => bench::run(w),
        Verb::Convert(a) => convert::run(a),
        Verb::Embed(a) => embed::run(a),
        Verb::Pretrain(a) => pretrain::run(a),
        Verb::Export(a) => export::run(a),
        Verb::Plot(a) => plot::run(a),
        Verb::Resample(a) => resample::run(a),
        Verb::ExtractSubvolumes(a) => extract_subvolumes::run(a),
        Verb::Preview(a) => preview::run(a),
        Verb::Finetune(a) => finetune::run(a),
        Verb::Evaluate(a) => evaluate::run(a),
        Verb::Predict(a) => predict::run(a),
        Verb::Phantoms(a) => phantoms::run(a),
        Verb::GpuInfo(a) => gpu_info::run(a),
    }
}
