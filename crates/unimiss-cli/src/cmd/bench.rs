//! `cargo xtask bench <what>`: each benchmark family lives in `crate::bench::<what>`.
//! To add one: a variant here, an arm in `run`, a module in `src/bench/`.

/// Which benchmark to run.
#[derive(clap::Subcommand)]
pub enum Which {
    /// Data pipelines: 2D and 3D samples/s by thread count, NIfTI/gzip MB/s.
    Data(crate::bench::data::Args),
    /// unimiss-ops kernels at the MiT's shapes: convs, transposed convs, norms, softmax (ms, GFLOP/s).
    Ops(crate::bench::ops::Args),
    /// The MiT backbone: forward and forward+backward ms, peak memory, per-op profile.
    Model(crate::bench::model::Args),
    /// Pretraining steps: ms per 2D and 3D step at the official batch shapes, peak memory.
    Train(crate::bench::train::Args),
    /// Pretrained vs random initialisation on the phantoms at equal fine-tuning budget.
    Transfer(crate::bench::transfer::Args),
}

pub fn run(which: Which) -> anyhow::Result<()> {
    match which {
        Which::Data(a) => crate::bench::data::run(a),
        Which::Model(a) => crate::bench::model::run(a),
        Which::Ops(a) => crate::bench::ops::run(a),
        Which::Train(a) => crate::bench::train::run(a),
        Which::Transfer(a) => crate::bench::transfer::run(a),
    }
}
