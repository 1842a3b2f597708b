//! `cargo xtask bench <what>`: each benchmark family lives in `crate::bench::<what>`.
//! To add one: a variant here, an arm in `run`, a module in `src/bench/`.

/// Which benchmark to run.
#[derive(clap::Subcommand)]
pub enum Which {}

pub fn run(which: Which) -> anyhow::Result<()> {
    match which {}
}
