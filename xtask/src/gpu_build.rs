//! `cargo xtask gpu-build`: the `unimiss` binary with CUDA (and NCCL), built here without a GPU
//! and checked, ready to carry to the GPU machine (docs/gpu.md).
//!
//! 1. `scripts/setup-cuda13.sh` installs the CUDA 13.0.2 wheels from PyPI into a scratch
//!    directory and lays it out as a `CUDA_HOME` with a link-time stub `libcuda.so`.
//! 2. cargo builds `unimiss` in the release profile with `--features unimiss-cli/nccl` (falling
//!    back to `cuda` alone when the NCCL build fails, and saying so), `CUDA_COMPUTE_CAP=90`, into
//!    its own target directory, and the `unimiss-ops` test binary with `cuda` (its CUDA-vs-CPU
//!    tests run on the GPU machine).
//! 3. The binary is checked: its `NEEDED` libraries all resolve against the wheels and the
//!    stub, its embedded PTX is ISA `.version` <= 9.0 (what a CUDA 13.0 driver JITs) and targets
//!    `sm_90a` only, and run against the stub driver `gpu-info` must stop with the error that
//!    says there is no CUDA device (exit status 1, not a crash).
//! 4. Both binaries, without their debug sections (line tables: 96 of the 164 MB), are gzipped
//!    into `.gpubin/` (ignored by git) to fit what travels to the GPU machine (64 MiB); the last
//!    line printed is the (unstripped) binary's path.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};

pub const USAGE: &str = "\
Usage: cargo xtask gpu-build [--cuda-dir DIR] [--no-nccl] [--no-tests]

Builds `unimiss` with CUDA (and NCCL) for the H100 (sm_90a) against CUDA 13.0 wheels from PyPI,
checks it, runs it against a stub driver, and gzips it into .gpubin/ (docs/gpu.md).
  --cuda-dir DIR  where the CUDA wheels and the CUDA_HOME go [default: $CUDA_BUILD_DIR or /tmp/cuda13]
  --no-nccl       build with `cuda` only
  --no-tests      skip the unimiss-ops CUDA test binary
The target directory is $CARGO_TARGET_DIR, else target-cuda/ (kept apart from the CPU build's).
";

struct Opts {
    cuda_dir: PathBuf,
    nccl: bool,
    tests: bool,
}

fn parse(args: &[String]) -> anyhow::Result<Option<Opts>> {
    let default = std::env::var_os("CUDA_BUILD_DIR").map_or_else(|| PathBuf::from("/tmp/cuda13"), PathBuf::from);
    let mut o = Opts { cuda_dir: default, nccl: true, tests: true };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--cuda-dir" => o.cuda_dir = it.next().context("--cuda-dir needs a directory")?.into(),
            "--no-nccl" => o.nccl = false,
            "--no-tests" => o.tests = false,
            "-h" | "--help" => return Ok(None),
            other => bail!("gpu-build: unknown argument {other:?}\n\n{USAGE}"),
        }
    }
    Ok(Some(o))
}

pub fn run(root: &Path, args: &[String]) -> anyhow::Result<()> {
    let Some(mut o) = parse(args)? else {
        print!("{USAGE}");
        return Ok(());
    };
    let t0 = Instant::now();
    if let Err(e) = setup(root, &o.cuda_dir, o.nccl) {
        if !o.nccl {
            return Err(e);
        }
        eprintln!("gpu-build: installing NCCL failed ({e:#}); going on with `cuda` alone");
        o.nccl = false;
        setup(root, &o.cuda_dir, false)?;
    }
    let cuda_home = o.cuda_dir.join("cuda");
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target-cuda"), PathBuf::from);
    let t_build = Instant::now();
    let mut features = if o.nccl { "unimiss-cli/nccl" } else { "unimiss-cli/cuda" };
    let bin_args = ["build", "--release", "--package", "unimiss-cli", "--bin", "unimiss", "--features"];
    if let Err(e) = must(cargo(root, &cuda_home, &target).args(bin_args).arg(features), &format!("cargo build ({features})")) {
        if !o.nccl {
            return Err(e);
        }
        eprintln!("gpu-build: the NCCL build failed ({e:#}); building with `cuda` alone");
        features = "unimiss-cli/cuda";
        must(cargo(root, &cuda_home, &target).args(bin_args).arg(features), "cargo build (cuda)")?;
    }
    let bin = target.join("release/unimiss");
    let build_s = t_build.elapsed().as_secs();
    let tests = if o.tests { Some(ops_tests(root, &cuda_home, &target)?) } else { None };

    let lib_path = format!("{}:{}", cuda_home.join("lib64").display(), o.cuda_dir.join("stubrun").display());
    let needed = check_libraries(&bin, &lib_path)?;
    let ptx = check_ptx(&bin)?;
    let stub = stub_run(&bin, &lib_path)?;

    let out_dir = root.join(".gpubin");
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let gz = gzip(&bin, &out_dir.join("unimiss.gz"))?;
    let tests_gz = tests.as_ref().map(|t| gzip(t, &out_dir.join("unimiss-ops-cuda-tests.gz"))).transpose()?;
    let bundled = bundle_host_libs(&bin, &lib_path, &out_dir.join("lib"))?;
    let mb = |p: &Path| std::fs::metadata(p).map(|m| m.len() as f64 / 1e6).unwrap_or(f64::NAN);

    println!("gpu-build: features {features}; build {build_s} s (cargo), {} s in all", t0.elapsed().as_secs());
    println!("gpu-build: binary {:.1} MB, gzipped {:.1} MB ({})", mb(&bin), mb(&gz), gz.display());
    if let (Some(t), Some(g)) = (&tests, &tests_gz) {
        println!("gpu-build: unimiss-ops CUDA tests {:.1} MB, gzipped {:.1} MB ({})", mb(t), mb(g), g.display());
    }
    println!("gpu-build: NEEDED {}", needed.join(" "));
    println!("gpu-build: fallback copies in .gpubin/lib (searched last there): {}", bundled.join(" "));
    println!("gpu-build: PTX {ptx}");
    println!("gpu-build: against the stub driver: {stub}");
    println!("{}", bin.display());
    Ok(())
}

/// `scripts/setup-cuda13.sh [--nccl] DIR`.
fn setup(root: &Path, dir: &Path, nccl: bool) -> anyhow::Result<()> {
    let mut cmd = Command::new("bash");
    cmd.arg(root.join("scripts/setup-cuda13.sh"));
    if nccl {
        cmd.arg("--nccl");
    }
    must(cmd.arg(dir), "scripts/setup-cuda13.sh")
}

/// cargo in the workspace root with the CUDA build environment of `cuda_home`.
fn cargo(root: &Path, cuda_home: &Path, target: &Path) -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    let path = std::env::var("PATH").unwrap_or_default();
    c.current_dir(root)
        .env("CUDA_HOME", cuda_home)
        // cudarc's build script runs a plain `nvcc --version` from PATH.
        .env("PATH", format!("{}:{path}", cuda_home.join("bin").display()))
        // No nvidia-smi here; cudaforge turns 90 into sm_90a (H100/H200 only).
        .env("CUDA_COMPUTE_CAP", "90")
        .env("CARGO_TARGET_DIR", target);
    // cudarc adds the link directories of every one of these that is set.
    for v in ["CUDA_PATH", "CUDA_ROOT", "CUDA_TOOLKIT_ROOT_DIR"] {
        c.env_remove(v);
    }
    c
}

fn must(cmd: &mut Command, what: &str) -> anyhow::Result<()> {
    let st = cmd.status().with_context(|| format!("could not start {what}"))?;
    if !st.success() {
        bail!("{what} failed ({st})")
    }
    Ok(())
}

/// Builds the unimiss-ops integration tests with `cuda` and returns the test binary's path.
fn ops_tests(root: &Path, cuda_home: &Path, target: &Path) -> anyhow::Result<PathBuf> {
    let out = cargo(root, cuda_home, target)
        .args(["test", "--release", "--no-run", "--package", "unimiss-ops", "--test", "it", "--features", "unimiss-ops/cuda"])
        .args(["--message-format", "json-render-diagnostics"])
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("could not start cargo test --no-run")?;
    if !out.status.success() {
        bail!("building the unimiss-ops CUDA tests failed ({})", out.status)
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let key = "\"executable\":\"";
    text.lines()
        .filter_map(|l| l.split_once(key).and_then(|(_, rest)| rest.split_once('"')).map(|(p, _)| PathBuf::from(p)))
        .next_back()
        .context("cargo test --no-run named no test executable")
}

/// The `NEEDED` entries of `bin`; errors when one does not resolve with `lib_path`.
fn check_libraries(bin: &Path, lib_path: &str) -> anyhow::Result<Vec<String>> {
    let out = Command::new("readelf").arg("-d").arg(bin).output().context("could not run readelf (binutils)")?;
    let needed: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| l.split_once('[').and_then(|(_, r)| r.split_once(']')).map(|(n, _)| n.to_string()))
        .collect();
    if needed.is_empty() {
        bail!("readelf found no NEEDED entries in {}", bin.display())
    }
    let ldd = Command::new("ldd").arg(bin).env("LD_LIBRARY_PATH", lib_path).output().context("could not run ldd")?;
    let missing: Vec<String> =
        String::from_utf8_lossy(&ldd.stdout).lines().filter(|l| l.contains("not found")).map(|l| l.trim().to_string()).collect();
    if !missing.is_empty() {
        bail!("{}: libraries not found with LD_LIBRARY_PATH={lib_path}: {}", bin.display(), missing.join(", "))
    }
    Ok(needed)
}

/// Counts the embedded PTX modules' `.version` and `.target` lines; errors on an ISA newer than
/// 9.0 (a CUDA 13.0 driver cannot JIT it) or a target other than `sm_90a`.
fn check_ptx(bin: &Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(bin).with_context(|| format!("reading {}", bin.display()))?;
    let (versions, targets) = (directive_values(&bytes, b"\n.version "), directive_values(&bytes, b"\n.target "));
    if versions.is_empty() {
        bail!("{}: no embedded PTX found (was it built with cuda?)", bin.display())
    }
    if let Some((v, _)) = versions.iter().find(|(v, _)| !version_at_most_9_0(v)) {
        bail!("{}: PTX .version {v} is newer than 9.0, which a CUDA 13.0 driver (580) cannot load", bin.display())
    }
    if let Some((t, _)) = targets.iter().find(|(t, _)| t != "sm_90a") {
        bail!("{}: PTX .target {t}: only sm_90a was expected (CUDA_COMPUTE_CAP=90)", bin.display())
    }
    let list = |v: &[(String, usize)]| v.iter().map(|(s, n)| format!("{s} x{n}")).collect::<Vec<_>>().join(", ");
    Ok(format!(".version {}; .target {}", list(&versions), list(&targets)))
}

/// Whether a PTX ISA version `major.minor` is at most 9.0 (what nvcc 13.0 writes).
fn version_at_most_9_0(v: &str) -> bool {
    let (major, minor) = v.split_once('.').unwrap_or((v, "0"));
    matches!((major.parse::<u32>(), minor.parse::<u32>()), (Ok(a), Ok(b)) if (a, b) <= (9, 0))
}

/// The distinct words after each `key` in `bytes`, with their counts.
fn directive_values(bytes: &[u8], key: &[u8]) -> Vec<(String, usize)> {
    let mut found: Vec<(String, usize)> = Vec::new();
    let mut i = 0;
    while let Some(pos) = bytes[i..].windows(key.len()).position(|w| w == key) {
        let start = i + pos + key.len();
        let end = bytes[start..].iter().position(|b| !(b.is_ascii_alphanumeric() || *b == b'.' || *b == b'_')).map_or(bytes.len(), |e| start + e);
        let word = String::from_utf8_lossy(&bytes[start..end]).into_owned();
        match found.iter_mut().find(|(w, _)| *w == word) {
            Some((_, n)) => *n += 1,
            None => found.push((word, 1)),
        }
        i = end;
    }
    found
}

/// Runs `gpu-info` against the stub driver: it must fail with the error naming the missing
/// device (exit status 1), not crash. Returns its error line.
fn stub_run(bin: &Path, lib_path: &str) -> anyhow::Result<String> {
    let out = Command::new(bin)
        .args(["gpu-info", "--device", "cuda:0"])
        .env("LD_LIBRARY_PATH", lib_path)
        .output()
        .with_context(|| format!("could not start {}", bin.display()))?;
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if out.status.code() != Some(1) || !err.contains("no usable CUDA device") {
        bail!("against the stub driver `unimiss gpu-info` should stop with \"no usable CUDA device\"; it gave {} and: {err}", out.status)
    }
    Ok(err)
}

/// Copies the libraries `bin` needs beyond glibc, libstdc++ and CUDA (fontconfig, freetype and
/// theirs, for the plots) into `dir`: the GPU machine's image may lack them, and the binary is
/// linked `BIND_NOW`, so a missing one stops it at start. gpu-check.sh searches `dir` last.
fn bundle_host_libs(bin: &Path, lib_path: &str, dir: &Path) -> anyhow::Result<Vec<String>> {
    const SYSTEM: [&str; 10] =
        ["libc.so", "libm.so", "libgcc_s.so", "libstdc++.so", "ld-linux", "libpthread.so", "libdl.so", "librt.so", "linux-vdso", "libcu"];
    let ldd = Command::new("ldd").arg(bin).env("LD_LIBRARY_PATH", lib_path).output().context("could not run ldd")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut copied = Vec::new();
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        let Some((name, rest)) = line.trim().split_once(" => ") else { continue };
        let Some(path) = rest.split_whitespace().next() else { continue };
        if SYSTEM.iter().any(|s| name.starts_with(s)) || name.starts_with("libnccl") || !path.starts_with('/') {
            continue;
        }
        std::fs::copy(path, dir.join(name)).with_context(|| format!("copying {path}"))?;
        copied.push(name.to_string());
    }
    Ok(copied)
}

/// `src` without its debug sections, gzipped to `dst`.
fn gzip(src: &Path, dst: &Path) -> anyhow::Result<PathBuf> {
    let stripped = dst.with_extension("stripped");
    must(Command::new("objcopy").arg("--strip-debug").arg(src).arg(&stripped), "objcopy --strip-debug")?;
    let file = std::fs::File::create(dst).with_context(|| format!("creating {}", dst.display()))?;
    let st = Command::new("gzip").arg("-9").arg("-c").arg(&stripped).stdout(file).status().context("could not run gzip")?;
    std::fs::remove_file(&stripped).with_context(|| format!("removing {}", stripped.display()))?;
    if !st.success() {
        bail!("gzip {} failed ({st})", src.display())
    }
    Ok(dst.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ptx_directives_are_counted_and_versions_compared() {
        let bin = b"\x00junk\n.version 9.0\n.target sm_90a\n.address_size 64\n\x7fELF\n.version 9.0\n.target sm_90a, debug\n.version 8.7";
        assert_eq!(directive_values(bin, b"\n.version "), vec![("9.0".to_string(), 2), ("8.7".to_string(), 1)]);
        assert_eq!(directive_values(bin, b"\n.target "), vec![("sm_90a".to_string(), 2)]);
        assert!(version_at_most_9_0("9.0") && version_at_most_9_0("8.7") && version_at_most_9_0("9"));
        assert!(!version_at_most_9_0("9.5") && !version_at_most_9_0("10.0") && !version_at_most_9_0("x"));
    }
}
