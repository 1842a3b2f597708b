//! Hostile and hand-built `.pth` files: the reader returns an error naming the file (never a
//! stack overflow, a panic or an unbounded allocation), and reads well-formed tensors exactly.

use std::io::Write;
use std::path::{Path, PathBuf};

use candle::Result;
use unimiss_model::checkpoint::{self, Which};

/// A `torch.save`-style zip: `archive/data.pkl` plus storages `archive/data/<key>`, stored.
pub fn write_pth(path: &Path, pickle: &[u8], storages: &[(&str, &[u8])]) -> std::io::Result<()> {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path)?);
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("archive/data.pkl", opts)?;
    zip.write_all(pickle)?;
    for (key, bytes) in storages {
        zip.start_file(format!("archive/data/{key}"), opts)?;
        zip.write_all(bytes)?;
    }
    zip.finish()?;
    Ok(())
}

/// Pickle opcodes (protocol 2), the subset torch.save uses.
#[derive(Default)]
pub struct Pickle(pub Vec<u8>);

impl Pickle {
    pub fn new() -> Self {
        Self(vec![0x80, 2])
    }
    pub fn op(mut self, code: u8) -> Self {
        self.0.push(code);
        self
    }
    pub fn str(mut self, s: &str) -> Self {
        self.0.push(b'X');
        self.0.extend((s.len() as u32).to_le_bytes());
        self.0.extend(s.as_bytes());
        self
    }
    pub fn int(mut self, v: u8) -> Self {
        self.0.extend([b'K', v]);
        self
    }
    pub fn global(mut self, module: &str, class: &str) -> Self {
        self.0.push(b'c');
        self.0.extend(format!("{module}\n{class}\n").as_bytes());
        self
    }
    pub fn ints(self, v: &[u8]) -> Self {
        v.iter().fold(self.op(b'('), |p, &x| p.int(x)).op(b't')
    }
    /// `_rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())`.
    pub fn tensor(self, storage: &str, class: &str, numel: u8, offset: u8, size: &[u8], stride: &[u8]) -> Self {
        self.global("torch._utils", "_rebuild_tensor_v2")
            .op(b'(')
            .op(b'(')
            .str("storage")
            .global("torch", class)
            .str(storage)
            .str("cpu")
            .int(numel)
            .op(b't')
            .op(b'Q')
            .int(offset)
            .ints(size)
            .ints(stride)
            .op(0x89)
            .global("collections", "OrderedDict")
            .op(b')')
            .op(b'R')
            .op(b't')
            .op(b'R')
    }
    pub fn stop(self) -> Vec<u8> {
        self.op(b'.').0
    }
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn load_err(path: &Path) -> String {
    match checkpoint::load_pth(path, Which::Teacher) {
        Ok(sd) => panic!("{} loaded ({} tensors) but should have been refused", path.display(), sd.len()),
        Err(e) => e.to_string(),
    }
}

fn tmp(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

/// The drill of issue 12: 300,000 nested lists (600 KB) aborted `convert` with a stack overflow.
#[test]
fn deeply_nested_pickle_is_refused_with_the_file_named() -> std::io::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = tmp(&dir, "nested.pth");
    let n = 300_000;
    let mut p = Pickle::new();
    p.0.extend(std::iter::repeat_n(b']', n));
    p.0.extend(std::iter::repeat_n(b'a', n - 1));
    write_pth(&path, &p.stop(), &[])?;
    let err = load_err(&path);
    assert!(err.contains(&path.display().to_string()) && err.contains("deeper than 256"), "{err}");
    Ok(())
}

/// A few hundred bytes of memo references that would clone a list into 2^60 nodes.
#[test]
fn memo_clone_bomb_is_refused_before_allocating() -> std::io::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = tmp(&dir, "bomb.pth");
    // L = []; repeat: L = [L, L] (BINPUT 0, BINGET 0, BINGET 0, TUPLE2 …)
    let mut p = Pickle::new().op(b']');
    for _ in 0..60 {
        p = p.op(b'q').op(0).op(b'h').op(0).op(b'h').op(0).op(0x86);
    }
    write_pth(&path, &p.stop(), &[])?;
    let start = std::time::Instant::now();
    let err = load_err(&path);
    assert!(err.contains("bomb.pth") && err.contains("MiB"), "{err}");
    assert!(start.elapsed().as_secs_f64() < 5.0, "took {:?}", start.elapsed());
    Ok(())
}

#[test]
fn string_longer_than_the_pickle_is_refused() -> std::io::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = tmp(&dir, "longstr.pth");
    let mut p = Pickle::new().op(b'X');
    p.0.extend(u32::MAX.to_le_bytes());
    write_pth(&path, &p.stop(), &[])?;
    let err = load_err(&path);
    assert!(err.contains("longstr.pth") && err.contains("past the end"), "{err}");
    Ok(())
}

/// candle's tensor-info reader indexes these argument tuples unchecked (a panic); ours names the
/// tensor.
#[test]
fn malformed_tensor_entries_name_the_tensor() -> std::io::Result<()> {
    let dir = tempfile::tempdir()?;
    let short_args = Pickle::new()
        .op(b'}')
        .str("w")
        .global("torch._utils", "_rebuild_tensor_v2")
        .op(b'(')
        .int(0)
        .op(b't')
        .op(b'R')
        .op(b's')
        .stop();
    let short_storage = Pickle::new()
        .op(b'}')
        .str("w")
        .global("torch._utils", "_rebuild_tensor_v2")
        .op(b'(')
        .op(b'(')
        .str("storage")
        .op(b't')
        .op(b'Q')
        .int(0)
        .ints(&[2])
        .ints(&[1])
        .op(b't')
        .op(b'R')
        .op(b's')
        .stop();
    let too_big = Pickle::new().op(b'}').str("w").tensor("0", "FloatStorage", 4, 1, &[2, 2], &[2, 1]).op(b's').stop();
    let strided = Pickle::new().op(b'}').str("w").tensor("0", "FloatStorage", 4, 0, &[2, 2], &[4, 2]).op(b's').stop();
    let dtype = Pickle::new().op(b'}').str("w").tensor("0", "ComplexStorage", 4, 0, &[2], &[1]).op(b's').stop();
    let storage = f32_bytes(&[1.0, 2.0, 3.0, 4.0]);
    for (name, pickle, want) in [
        ("short_args", short_args, "at least 4"),
        ("short_storage", short_storage, "storage"),
        ("too_big", too_big, "too short"),
        ("strided", strided, "non-contiguous"),
        ("dtype", dtype, "ComplexStorage"),
    ] {
        let path = tmp(&dir, &format!("{name}.pth"));
        write_pth(&path, &pickle, &[("0", &storage)])?;
        let err = load_err(&path);
        assert!(err.contains(&format!("{name}.pth")) && err.contains("tensor w") && err.contains(want), "{name}: {err}");
    }
    Ok(())
}

/// Row-major with an offset, column-major, and a training checkpoint's `teacher` entry.
#[test]
fn hand_built_tensors_read_exactly() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = tmp(&dir, "ok.pth");
    let storage = f32_bytes(&[9.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let sd = |p: Pickle| {
        p.op(b'}')
            .op(b'(')
            .str("a")
            .tensor("0", "FloatStorage", 7, 1, &[2, 3], &[3, 1])
            .str("b")
            .tensor("0", "FloatStorage", 7, 1, &[2, 3], &[1, 2])
            .str("c")
            .int(7)
            .op(b'u')
    };
    let pickle = sd(Pickle::new().op(b'}').op(b'(').str("teacher")).str("epoch").int(3).op(b'u').stop();
    write_pth(&path, &pickle, &[("0", &storage)])?;
    let got = checkpoint::load_pth(&path, Which::Teacher)?;
    assert_eq!(got.len(), 2, "the integer entry is not a tensor");
    let a = got.get("backbone.a").map(|t| t.to_vec2::<f32>()).transpose()?;
    let b = got.get("backbone.b").map(|t| t.to_vec2::<f32>()).transpose()?;
    assert_eq!(a, Some(vec![vec![1.0, 2.0, 3.0], vec![4.0, 5.0, 6.0]]));
    assert_eq!(b, Some(vec![vec![1.0, 3.0, 5.0], vec![2.0, 4.0, 6.0]]));
    let err = match checkpoint::load_pth(&path, Which::Student) {
        Ok(_) => panic!("no student in this file"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("ok.pth") && err.contains("teacher") && err.contains("epoch"), "{err}");
    Ok(())
}

/// On the official fixture, the bounded reader gives exactly candle's tensors (same keys, shapes,
/// bits) for the `teacher` state_dict.
#[test]
#[ignore = "needs the parity fixtures: set UNIMISS_FIXTURES (default ../shared/fixtures/parity), run with --include-ignored"]
fn official_fixture_reads_as_candle_does() -> Result<()> {
    let dir = crate::common::fixtures();
    let path = dir.join("mit_tiny_official.pth");
    let ours = checkpoint::load_pth(&path, Which::Teacher)?;
    let theirs = candle::pickle::read_all_with_key(&path, Some("teacher"))?;
    assert_eq!(ours.len(), theirs.len());
    for (k, t) in theirs {
        let key = if k.starts_with("backbone.") || k.starts_with("head.") { k.clone() } else { format!("backbone.{k}") };
        let o = ours.get(&key).unwrap_or_else(|| panic!("{key} missing"));
        assert_eq!(o.dims(), t.dims(), "{k}");
        assert_eq!(o.dtype(), t.dtype(), "{k}");
        let bits = |x: &candle::Tensor| -> Result<Vec<u32>> {
            Ok(x.to_dtype(candle::DType::F32)?.flatten_all()?.to_vec1::<f32>()?.into_iter().map(f32::to_bits).collect())
        };
        assert!(bits(o)? == bits(&t)?, "{k}: values differ from candle's reader");
    }
    Ok(())
}
