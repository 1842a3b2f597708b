//! Helpers shared by the verbs (`cmd/`) and the benchmarks (`bench/`): the repository root and
//! the `D,H,W` size argument.

use std::path::PathBuf;

use anyhow::Context;

/// The repository root: `$UNIMISS_ROOT` (set by xtask), else the current directory.
pub fn repo_root() -> PathBuf {
    std::env::var_os("UNIMISS_ROOT").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."))
}

/// Parses `D,H,W`.
pub fn parse_size3(s: &str) -> anyhow::Result<[usize; 3]> {
    let v: Vec<usize> = s
        .split(',')
        .map(|t| t.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .with_context(|| format!("size {s:?} must be D,H,W"))?;
    anyhow::ensure!(v.len() == 3, "size {s:?} must be D,H,W");
    Ok([v[0], v[1], v[2]])
}
