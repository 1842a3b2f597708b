//! `embed --image` on every real sample of `../shared/data` (issue 20): the DeepLesion tiles
//! (250² and 161² in-plane), the RICORD volume (147²), the NIH X-rays (512²), and the project's
//! own `resample` → `extract-subvolumes` output of every volume, whatever its in-plane size. Each
//! gives a finite embedding; a volume whose height and width the model cannot take is padded
//! (default) or resized (`--fit resize`), and the command says which.

use std::path::{Path, PathBuf};

use candle::Device;

use crate::bin::{Res, run_ok, s};
use crate::common::{data, fixtures};

/// The real images and volumes under `dir` (sorted).
fn files(dir: &Path) -> Result<Vec<PathBuf>, Box<dyn std::error::Error>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| {
        let n = p.to_string_lossy().to_lowercase();
        n.ends_with(".nii.gz") || n.ends_with(".nii") || n.ends_with(".png")
    }).collect();
    v.sort();
    Ok(v)
}

/// `embed --image` of one file: one finite `[1, 48]` embedding; the note on stderr.
fn embed(weights: &Path, image: &Path, out: &Path, extra: &[&str]) -> Result<String, Box<dyn std::error::Error>> {
    let mut args = vec!["embed", "--weights", s(weights), "--arch", "tiny", "--image", s(image), "--output", s(out)];
    args.extend(extra);
    let o = run_ok(&args)?;
    let name = image.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let t = candle::safetensors::load(out, &Device::Cpu)?;
    let e = t.get(&name).ok_or_else(|| format!("no embedding of {name}"))?;
    assert_eq!(e.dims(), [1, 48], "{name}");
    let v: Vec<f32> = e.flatten_all()?.to_vec1()?;
    assert!(v.iter().all(|x| x.is_finite()), "{name}: {v:?}");
    Ok(String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
#[ignore = "needs the parity fixtures and the real samples: set UNIMISS_FIXTURES and UNIMISS_DATA, run with --include-ignored"]
fn embed_takes_every_real_sample() -> Res {
    let (fx, data) = (fixtures(), data());
    let tmp = tempfile::tempdir()?;
    let w = tmp.path().join("w.safetensors");
    run_ok(&["convert", "--from", s(&fx.join("mit_tiny_official.pth")), "--to", s(&w), "--which", "teacher"])?;
    // The project's own preprocessing of every volume: resample to 1×1×3 mm, cut sub-volumes.
    let (rs, sub) = (tmp.path().join("rs"), tmp.path().join("sub"));
    let mut volumes = files(&data.join("ct-volumes"))?;
    volumes.extend(files(&data.join("ct-subvolumes"))?);
    for v in &volumes {
        run_ok(&["resample", "--input", s(v), "--output", s(&rs), "--spacing", "1,1,3"])?;
    }
    run_ok(&["extract-subvolumes", "--input", s(&rs), "--output", s(&sub)])?;
    let mut all = volumes.clone();
    all.extend(files(&data.join("cxr"))?);
    let ours = files(&sub)?;
    assert!(!ours.is_empty(), "extract-subvolumes wrote nothing");
    all.extend(ours);
    let out = tmp.path().join("e.safetensors");
    let mut padded = 0;
    for f in &all {
        let note = embed(&w, f, &out, &[])?;
        padded += usize::from(note.contains("padded"));
    }
    assert!(padded >= volumes.len(), "every real volume needs fitting ({padded} padded of {})", all.len());
    let note = embed(&w, &volumes[0], &out, &["--fit", "resize"])?;
    assert!(note.contains("resized"), "{note}");
    eprintln!("embedded {} real samples ({padded} padded)", all.len());
    Ok(())
}
