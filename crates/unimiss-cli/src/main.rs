//! `unimiss`: the optimised binary behind `cargo xtask <verb>`.
//!
//! Each verb lives in its own module under `cmd/`; this file only dispatches.

mod bench;
mod cmd;

use clap::Parser;

/// UniMiSS in Rust: pretraining, conversion, benchmarks and downstream tasks.
#[derive(Parser)]
#[command(name = "cargo xtask", version, about)]
struct Cli {
    #[command(subcommand)]
    verb: cmd::Verb,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    cmd::run(cli.verb)
}
