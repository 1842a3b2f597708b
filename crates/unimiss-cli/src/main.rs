//! `unimiss`: the optimised binary behind `cargo xtask <verb>`.
//!
//! Each verb lives in its own module under `cmd/`; this file only dispatches and reports errors.

mod args;
mod bench;
mod cmd;

use std::process::ExitCode;

use clap::Parser;

/// UniMiSS in Rust: pretraining, conversion, benchmarks and downstream tasks.
#[derive(Parser)]
#[command(name = "unimiss", version, about)]
struct Cli {
    #[command(subcommand)]
    verb: cmd::Verb,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cmd::run(cli.verb) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", said_once(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, each said once: the library errors already put their
/// cause in their message (`{path}: {source}`), so a cause whose text is there is left out.
fn said_once(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out
}
