//! One module per verb. Each module defines its clap `Args` struct and `run(args)`.
//! To add a verb: a module here, a variant in `Verb`, an arm in `run`.

pub mod bench;

/// Every verb of `cargo xtask`.
#[derive(clap::Subcommand)]
pub enum Verb {
    /// Benchmarks that print throughput (ops, model, data, train, transfer); `--json FILE` writes them.
    #[command(subcommand)]
    Bench(bench::Which),
}

pub fn run(verb: Verb) -> anyhow::Result<()> {
    match verb {
        Verb::Bench(w) => bench::run(w),
    }
}
