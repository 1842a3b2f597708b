//! The run-directory rule, for pretraining and fine-tuning alike: a directory holds one run. A
//! new run never writes into a directory that holds anything else; only `--resume` continues the
//! run already there. A run that stopped before its first checkpoint (Ctrl-C in epoch 1, a bad
//! file found in epoch 1) has nothing to continue: a new run in its directory removes its files
//! and starts again from step 0, and says so ([`Claimed::restarted`]).

use std::path::{Path, PathBuf};

use crate::error::{Result, RuntimeError, io_err};

/// How a command means to use its output directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim<'a> {
    /// A new run in a directory the user chose (`--output`, the config's `output`): it must be
    /// absent, empty, or hold a run without a checkpoint.
    New,
    /// A new run in a default directory the user did not name: when it is taken, the first free
    /// `<dir>-2`, `<dir>-3`, … is used instead (the caller says so).
    NewOrNext,
    /// Continuing the run whose checkpoint is at this path (the run directory or a checkpoint
    /// inside it): the directory must be that run's, or absent or empty.
    Resume(&'a Path),
}

/// The directory [`claim`] settled on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// The directory to write (`dir` itself, or a fresh `<dir>-N` under [`Claim::NewOrNext`]).
    pub dir: PathBuf,
    /// The files of an earlier run without a checkpoint that were removed to start again.
    pub restarted: Vec<String>,
}

impl Claimed {
    /// The line that tells the user a run without a checkpoint was started again, if one was.
    pub fn note(&self) -> Option<String> {
        (!self.restarted.is_empty()).then(|| {
            format!(
                "{} held a run that stopped before its first checkpoint ({}): nothing to resume there, so it starts again from step 0",
                self.dir.display(),
                self.restarted.join(", ")
            )
        })
    }
}

/// What a directory holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holds {
    /// Absent, or an empty directory.
    Nothing,
    /// A run with at least one checkpoint, or with best weights (a finished fine-tune that kept
    /// no checkpoint).
    Run,
    /// The files of a run that stopped before its first checkpoint (names, sorted).
    Unfinished(Vec<String>),
    /// Something that is not a run: a plain file, or a folder with other files (names, sorted).
    Other(Vec<String>),
}

/// The files a run (pretraining or fine-tuning) writes into its directory.
fn is_run_file(name: &str) -> bool {
    matches!(
        name,
        "config.toml" | "job.json" | "log.jsonl" | "pretrained.txt" | "curves.png" | "loss.png" | "best.safetensors" | "skipped.tsv" | "checkpoints" | ".nccl-id"
    ) || name.starts_with("events.out.tfevents.")
        || name.starts_with(".tmp-")
}

/// What `dir` holds (see [`Holds`]).
pub fn holds(dir: &Path) -> Result<Holds> {
    let entries = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Holds::Nothing),
        Err(_) if dir.exists() && !dir.is_dir() => return Ok(Holds::Other(vec![])),
        Err(e) => return Err(io_err(dir)(e)),
    };
    let mut names = Vec::new();
    for e in entries {
        names.push(e.map_err(io_err(dir))?.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    if names.is_empty() {
        return Ok(Holds::Nothing);
    }
    let other: Vec<String> = names.iter().filter(|n| !is_run_file(n)).cloned().collect();
    if !other.is_empty() {
        return Ok(Holds::Other(other));
    }
    if crate::checkpoint::resolve(dir).is_ok() || dir.join("best.safetensors").is_file() { Ok(Holds::Run) } else { Ok(Holds::Unfinished(names)) }
}

/// The refusal for a directory that holds something other than a run.
fn not_a_run(dir: &Path, other: &[String]) -> RuntimeError {
    if other.is_empty() {
        return RuntimeError::Config(format!("{} is a file, not a directory: choose another --output", dir.display()));
    }
    let shown: Vec<&str> = other.iter().take(5).map(String::as_str).collect();
    let more = if other.len() > 5 { format!(" and {} more", other.len() - 5) } else { String::new() };
    RuntimeError::Config(format!(
        "{} is not empty and holds no run: {}{more} {} in the way. A run directory must be new, empty or a run's own: \
         choose another --output, or move those files out",
        dir.display(),
        shown.join(", "),
        if other.len() == 1 { "is" } else { "are" }
    ))
}

/// Remove the files of a run without a checkpoint (`names`, as [`holds`] listed them).
fn clear(dir: &Path, names: &[String]) -> Result<()> {
    for n in names {
        let p = dir.join(n);
        let r = if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
        r.map_err(io_err(&p))?;
    }
    Ok(())
}

/// Apply the rule to `dir` and create it. A refusal names `--resume` and `--output`, or what is
/// in the way.
pub fn claim(dir: &Path, how: Claim<'_>) -> Result<Claimed> {
    let chosen = match how {
        Claim::NewOrNext => (1..)
            .map(|n| if n == 1 { dir.to_path_buf() } else { numbered(dir, n) })
            .find(|d| matches!(holds(d), Ok(Holds::Nothing | Holds::Unfinished(_))))
            .unwrap_or_else(|| dir.to_path_buf()),
        _ => dir.to_path_buf(),
    };
    let mut restarted = Vec::new();
    match holds(&chosen)? {
        Holds::Nothing => {}
        Holds::Other(other) => return Err(not_a_run(&chosen, &other)),
        Holds::Unfinished(names) => {
            clear(&chosen, &names)?;
            restarted = names;
        }
        Holds::Run => {
            let resumes_here = match how {
                Claim::Resume(from) => is_inside(from, &chosen),
                _ => false,
            };
            if !resumes_here {
                let what = match how {
                    Claim::Resume(from) => format!("--resume {} would write into {}", from.display(), chosen.display()),
                    _ => format!("{} already holds a run", chosen.display()),
                };
                return Err(RuntimeError::Config(format!(
                    "{what}: a run directory is written by one run only. Continue that run with \
                     `--resume {}`, or start a new one with `--output NEW_DIR`",
                    chosen.display()
                )));
            }
        }
    }
    std::fs::create_dir_all(&chosen).map_err(io_err(&chosen))?;
    Ok(Claimed { dir: chosen, restarted })
}

/// `runs/sample` → `runs/sample-N`.
fn numbered(dir: &Path, n: usize) -> PathBuf {
    let mut name = dir.file_name().map(|s| s.to_os_string()).unwrap_or_default();
    name.push(format!("-{n}"));
    dir.with_file_name(name)
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

    fn dir_of(dir: &Path, how: Claim<'_>) -> PathBuf {
        claim(dir, how).unwrap().dir
    }

    #[test]
    fn a_new_run_never_writes_into_an_occupied_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path().join("runs/a");
        assert_eq!(dir_of(&run, Claim::New), run);
        assert!(run.is_dir());
        // Empty: still free (e.g. made by hand, or a run that died before writing).
        assert_eq!(dir_of(&run, Claim::New), run);
        occupy(&run);
        let err = claim(&run, Claim::New).unwrap_err().to_string();
        assert!(err.contains("already holds a run") && err.contains("--resume") && err.contains("--output"), "{err}");
        assert_eq!(std::fs::read_to_string(run.join("log.jsonl")).unwrap(), "{}\n");
    }

    #[test]
    fn a_run_without_a_checkpoint_starts_again() {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path().join("a");
        std::fs::create_dir_all(run.join("checkpoints/.tmp-ckpt-00000003-77")).unwrap();
        std::fs::write(run.join("log.jsonl"), "{}\n").unwrap();
        std::fs::write(run.join("config.toml"), "").unwrap();
        assert_eq!(holds(&run).unwrap(), Holds::Unfinished(vec!["checkpoints".into(), "config.toml".into(), "log.jsonl".into()]));
        let c = claim(&run, Claim::New).unwrap();
        assert!(c.note().unwrap().contains("starts again from step 0"), "{:?}", c.note());
        assert_eq!(std::fs::read_dir(&run).unwrap().count(), 0);
        // The default directory is reused too, rather than moving on to sample-2.
        std::fs::write(run.join("log.jsonl"), "{}\n").unwrap();
        assert_eq!(dir_of(&run, Claim::NewOrNext), run);
    }

    #[test]
    fn other_files_are_named_and_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("notes");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("notes.txt"), "mine").unwrap();
        std::fs::write(dir.join("log.jsonl"), "{}\n").unwrap();
        let err = claim(&dir, Claim::New).unwrap_err().to_string();
        assert!(err.contains("notes.txt is in the way") && err.contains("--output"), "{err}");
        assert_eq!(std::fs::read_to_string(dir.join("notes.txt")).unwrap(), "mine");
        let file = tmp.path().join("plain");
        std::fs::write(&file, "x").unwrap();
        let err = claim(&file, Claim::New).unwrap_err().to_string();
        assert!(err.contains("is a file, not a directory"), "{err}");
    }

    #[test]
    fn resume_writes_only_into_its_own_run() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        occupy(&a);
        occupy(&b);
        assert_eq!(dir_of(&a, Claim::Resume(&a)), a);
        assert_eq!(dir_of(&a, Claim::Resume(&a.join("checkpoints/ckpt-00000004"))), a);
        // Same directory spelled differently.
        assert!(claim(&tmp.path().join("./a/"), Claim::Resume(&a)).is_ok());
        // Resuming run a with --output b would mix the two.
        let err = claim(&b, Claim::Resume(&a)).unwrap_err().to_string();
        assert!(err.contains("--resume") && err.contains("--output"), "{err}");
        // Into a fresh directory (a fork of the run) is fine.
        let c = tmp.path().join("c");
        assert_eq!(dir_of(&c, Claim::Resume(&a)), c);
    }

    #[test]
    fn the_default_directory_moves_to_the_next_free_number() {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path().join("sample");
        assert_eq!(dir_of(&run, Claim::NewOrNext), run);
        occupy(&run);
        let second = dir_of(&run, Claim::NewOrNext);
        assert_eq!(second, tmp.path().join("sample-2"));
        occupy(&second);
        assert_eq!(dir_of(&run, Claim::NewOrNext), tmp.path().join("sample-3"));
    }
}
