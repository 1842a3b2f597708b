//! The run-directory rule, for pretraining and fine-tuning alike: a directory holds one run. A
//! new run never writes into a directory that holds anything; only `--resume` continues the run
//! already there.

use std::path::{Path, PathBuf};

use crate::error::{Result, SslError, io_err};

/// How a command means to use its output directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim<'a> {
    /// A new run in a directory the user chose (`--output`, the config's `output`): it must be
    /// absent or empty.
    New,
    /// A new run in a default directory the user did not name: when it is taken, the first free
    /// `<dir>-2`, `<dir>-3`, … is used instead (the caller says so).
    NewOrNext,
    /// Continuing the run whose checkpoint is at this path (the run directory or a checkpoint
    /// inside it): the directory must be that run's, or absent or empty.
    Resume(&'a Path),
}

/// Apply the rule to `dir` and create it; returns the directory to write (`dir` itself, or a
/// fresh `<dir>-N` under [`Claim::NewOrNext`]). A refusal names `--resume` and `--output`.
pub fn claim(dir: &Path, how: Claim<'_>) -> Result<PathBuf> {
    let chosen = match how {
        Claim::NewOrNext => (1..)
            .map(|n| if n == 1 { dir.to_path_buf() } else { numbered(dir, n) })
            .find(|d| is_free(d))
            .unwrap_or_else(|| dir.to_path_buf()),
        _ => dir.to_path_buf(),
    };
    if !is_free(&chosen) {
        let resumes_here = match how {
            Claim::Resume(from) => is_inside(from, &chosen),
            _ => false,
        };
        if !resumes_here {
            let what = match how {
                Claim::Resume(from) => format!("--resume {} would write into {}", from.display(), chosen.display()),
                _ => format!("{} already holds a run", chosen.display()),
            };
            return Err(SslError::Config(format!(
                "{what}: a run directory is written by one run only. Continue that run with \
                 `--resume {}`, or start a new one with `--output NEW_DIR`",
                chosen.display()
            )));
        }
    }
    std::fs::create_dir_all(&chosen).map_err(io_err(&chosen))?;
    Ok(chosen)
}

/// `runs/sample` → `runs/sample-N`.
fn numbered(dir: &Path, n: usize) -> PathBuf {
    let mut name = dir.file_name().map(|s| s.to_os_string()).unwrap_or_default();
    name.push(format!("-{n}"));
    dir.with_file_name(name)
}

/// Absent, or an empty directory.
fn is_free(dir: &Path) -> bool {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => entries.next().is_none(),
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    }
}

/// `path` is `dir` or lies under it (both resolved, so `./runs/a` and `runs/a/` agree).
fn is_inside(path: &Path, dir: &Path) -> bool {
    match (std::fs::canonicalize(path), std::fs::canonicalize(dir)) {
        (Ok(p), Ok(d)) => p.starts_with(d),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn occupy(dir: &Path) {
        std::fs::create_dir_all(dir.join("checkpoints/ckpt-00000004")).unwrap();
        std::fs::write(dir.join("log.jsonl"), "{}\n").unwrap();
    }

    #[test]
    fn a_new_run_never_writes_into_an_occupied_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path().join("runs/a");
        assert_eq!(claim(&run, Claim::New).unwrap(), run);
        assert!(run.is_dir());
        // Empty: still free (e.g. made by hand, or a run that died before writing).
        assert_eq!(claim(&run, Claim::New).unwrap(), run);
        occupy(&run);
        let err = claim(&run, Claim::New).unwrap_err().to_string();
        assert!(err.contains("already holds a run") && err.contains("--resume") && err.contains("--output"), "{err}");
        assert_eq!(std::fs::read_to_string(run.join("log.jsonl")).unwrap(), "{}\n");
    }

    #[test]
    fn resume_writes_only_into_its_own_run() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        occupy(&a);
        occupy(&b);
        assert_eq!(claim(&a, Claim::Resume(&a)).unwrap(), a);
        assert_eq!(claim(&a, Claim::Resume(&a.join("checkpoints/ckpt-00000004"))).unwrap(), a);
        // Same directory spelled differently.
        assert!(claim(&tmp.path().join("./a/"), Claim::Resume(&a)).is_ok());
        // Resuming run a with --output b would mix the two.
        let err = claim(&b, Claim::Resume(&a)).unwrap_err().to_string();
        assert!(err.contains("--resume") && err.contains("--output"), "{err}");
        // Into a fresh directory (a fork of the run) is fine.
        let c = tmp.path().join("c");
        assert_eq!(claim(&c, Claim::Resume(&a)).unwrap(), c);
    }

    #[test]
    fn the_default_directory_moves_to_the_next_free_number() {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path().join("sample");
        assert_eq!(claim(&run, Claim::NewOrNext).unwrap(), run);
        occupy(&run);
        let second = claim(&run, Claim::NewOrNext).unwrap();
        assert_eq!(second, tmp.path().join("sample-2"));
        occupy(&second);
        assert_eq!(claim(&run, Claim::NewOrNext).unwrap(), tmp.path().join("sample-3"));
    }
}
