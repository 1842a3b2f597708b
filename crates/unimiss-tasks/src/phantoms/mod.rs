//! A labelled synthetic benchmark in the spirit of MONAI's test-image generators.
//!
//! Every case `k` is drawn from a generator seeded by `(seed, k)` only, so a case does not depend
//! on `count`. Per case:
//! - `ct/case_k.nii.gz`: a CT-like volume (int16 HU) of `dims` = (D, H, W) with `spacing` (mm):
//!   air, an elliptic body with a fat rim, a vertebra, liver / spleen / two kidneys as smooth random
//!   shapes, with probability ½ a dense lesion in the liver, Gaussian blur and noise;
//! - `ct/case_k_seg.nii.gz`: the organ label map (0 background, 1 liver, 2 spleen, 3 kidney);
//! - `xray/case_k.png`: a radiograph-like projection (`size_2d`²) and
//!   `xray/case_k_{liver,spleen,kidney}.png` the projected organ masks (0/255, overlapping);
//! - the lesion label (0/1) of the case, in the manifests.
//!
//! Manifests (see [`crate::labelled`]): `{cls3d,seg3d,cls2d,seg2d}_{train,val,test}.tsv`, and
//! `pretrain.tsv` (the data crate's format, no labels) listing the training split's volumes and
//! projections for self-supervised pretraining. The split is the first 60 % train, then val and
//! test (at least one case each).

pub mod anatomy;
pub mod projection;

use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use unimiss_data::nifti::{Datatype, NiftiHeader, NiftiVersion, OutputType, write_nifti};
use unimiss_data::{Manifest, Modality, Sample};

use crate::error::{Result, TaskError};
use crate::labelled::{LabelledManifest, LabelledSample};
pub use anatomy::{CtCase, ORGANS, ct_case};
pub use projection::{XrayCase, project};

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct PhantomConfig {
    pub count: usize,
    pub seed: u64,
    /// Volume size (D, H, W).
    pub dims: [usize; 3],
    /// Voxel size (mm) along (D, H, W).
    pub spacing: [f64; 3],
    /// Side of the square projections.
    pub size_2d: usize,
}

impl Default for PhantomConfig {
    fn default() -> Self {
        Self { count: 40, seed: 0, dims: [32, 64, 64], spacing: [2.5, 1.2, 1.2], size_2d: 64 }
    }
}

/// Counts of a generated set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhantomSummary {
    pub train: usize,
    pub val: usize,
    pub test: usize,
    pub lesions: usize,
}

/// Train/val/test sizes for `count` cases (≥ 3).
pub fn split_sizes(count: usize) -> Result<[usize; 3]> {
    if count < 3 {
        return Err(TaskError::Invalid(format!("phantoms: --count {count} is below 3 (one case per split)")));
    }
    let val = (count / 5).max(1);
    let test = (count / 5).max(1);
    Ok([count - val - test, val, test])
}

/// Generates one case (CT and projection) from `(seed, k)`.
pub fn phantom_case(cfg: &PhantomConfig, k: usize) -> (CtCase, XrayCase) {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ k as u64);
    let ct = ct_case(&mut rng, cfg.dims, cfg.spacing);
    let xr = project(&ct, cfg.spacing, cfg.size_2d, &mut rng);
    (ct, xr)
}

/// A NIfTI header for a (D, H, W) volume with `spacing` along (D, H, W): file axes (x, y, z) =
/// (H, W, D), as the data crate reads them back.
pub fn nifti_header(spacing: [f64; 3]) -> NiftiHeader {
    let [sd, sh, sw] = spacing;
    NiftiHeader {
        version: NiftiVersion::One,
        big_endian: false,
        dims: [0, 0, 0],
        datatype: Datatype::I16,
        pixdim: [1.0, sh, sw, sd, 1.0, 1.0, 1.0, 1.0],
        vox_offset: 352,
        scl_slope: 1.0,
        scl_inter: 0.0,
        qform_code: 0,
        sform_code: 1,
        quatern: [0.0; 3],
        qoffset: [0.0; 3],
        srow: [[sh, 0.0, 0.0, 0.0], [0.0, sw, 0.0, 0.0], [0.0, 0.0, sd, 0.0]],
        xyzt_units: 2,
        descrip: "unimiss-rs phantom".into(),
    }
}

/// (D, H, W) row-major → NIfTI file order (x = H fastest, then y = W, then z = D).
pub fn to_file_order(data: &[f32], dims: [usize; 3]) -> Vec<f32> {
    let [d, h, w] = dims;
    let mut out = vec![0f32; data.len()];
    for z in 0..d {
        for y in 0..h {
            for x in 0..w {
                out[y + h * (x + w * z)] = data[(z * h + y) * w + x];
            }
        }
    }
    out
}

/// Writes a (D, H, W) volume as NIfTI (int16 or f32).
pub fn write_volume(path: &Path, data: &[f32], dims: [usize; 3], header: &NiftiHeader, ty: OutputType) -> Result<()> {
    let file = to_file_order(data, dims);
    write_nifti(path, header, [dims[1], dims[2], dims[0]], &file, ty).map_err(|e| TaskError::file(path, e))
}

/// Writes an 8-bit grey PNG.
pub fn write_png(path: &Path, data: &[u8], size: [usize; 2]) -> Result<()> {
    let img = image::GrayImage::from_raw(size[1] as u32, size[0] as u32, data.to_vec())
        .ok_or_else(|| TaskError::file(path, format!("{} bytes do not fill {}×{}", data.len(), size[0], size[1])))?;
    img.save(path).map_err(|e| TaskError::file(path, e))
}

/// Generates the benchmark under `out`; `progress(done, total)` is called after each case.
pub fn generate(out: &Path, cfg: &PhantomConfig, progress: &mut dyn FnMut(usize, usize)) -> Result<PhantomSummary> {
    let [n_train, n_val, n_test] = split_sizes(cfg.count)?;
    if cfg.dims.contains(&0) || cfg.size_2d == 0 || cfg.spacing.iter().any(|s| !(*s > 0.0)) {
        return Err(TaskError::Invalid(format!("phantoms: bad geometry {cfg:?}")));
    }
    for sub in ["ct", "xray"] {
        let d = out.join(sub);
        std::fs::create_dir_all(&d).map_err(|e| TaskError::file(&d, e))?;
    }
    let header = nifti_header(cfg.spacing);
    let [sd, sh, sw] = cfg.spacing;
    let spacing_xyz = [sh, sw, sd];
    let mut rows: Vec<(PathBuf, PathBuf, PathBuf, Vec<PathBuf>, bool)> = Vec::with_capacity(cfg.count);
    let mut lesions = 0;
    for k in 0..cfg.count {
        let (ct, xr) = phantom_case(cfg, k);
        let img = out.join(format!("ct/case_{k:03}.nii.gz"));
        let seg = out.join(format!("ct/case_{k:03}_seg.nii.gz"));
        write_volume(&img, &ct.hu.iter().map(|v| v.round()).collect::<Vec<_>>(), cfg.dims, &header, OutputType::Int16)?;
        let lab: Vec<f32> = ct.labels.iter().map(|&l| l as f32).collect();
        write_volume(&seg, &lab, cfg.dims, &header, OutputType::Int16)?;
        let png = out.join(format!("xray/case_{k:03}.png"));
        write_png(&png, &xr.image, [xr.size, xr.size])?;
        let mut mpaths = Vec::new();
        for (name, m) in ORGANS.iter().zip(&xr.masks) {
            let p = out.join(format!("xray/case_{k:03}_{name}.png"));
            write_png(&p, m, [xr.size, xr.size])?;
            mpaths.push(p);
        }
        lesions += ct.lesion as usize;
        rows.push((img, seg, png, mpaths, ct.lesion));
        progress(k + 1, cfg.count);
    }
    let splits = [("train", 0..n_train), ("val", n_train..n_train + n_val), ("test", n_train + n_val..cfg.count)];
    let lesion_classes = vec!["no_lesion".to_string(), "lesion".to_string()];
    let mut seg_classes = vec!["background".to_string()];
    seg_classes.extend(ORGANS.iter().map(|s| s.to_string()));
    let organ_names: Vec<String> = ORGANS.iter().map(|s| s.to_string()).collect();
    for (split, range) in splits {
        let sample = |p: &Path, m: Modality, label: Option<String>, sp: Option<[f64; 3]>| Sample { path: p.to_path_buf(), modality: m, label, spacing: sp };
        let pick = |f: &dyn Fn(&(PathBuf, PathBuf, PathBuf, Vec<PathBuf>, bool)) -> LabelledSample| -> Vec<LabelledSample> { rows[range.clone()].iter().map(f).collect() };
        let manifests = [
            ("cls3d", lesion_classes.clone(), pick(&|r| LabelledSample { sample: sample(&r.0, Modality::Volume3d, Some((r.4 as u8).to_string()), Some(spacing_xyz)), masks: vec![] })),
            ("seg3d", seg_classes.clone(), pick(&|r| LabelledSample { sample: sample(&r.0, Modality::Volume3d, None, Some(spacing_xyz)), masks: vec![r.1.clone()] })),
            ("cls2d", lesion_classes.clone(), pick(&|r| LabelledSample { sample: sample(&r.2, Modality::Image2d, Some((r.4 as u8).to_string()), None), masks: vec![] })),
            ("seg2d", organ_names.clone(), pick(&|r| LabelledSample { sample: sample(&r.2, Modality::Image2d, None, None), masks: r.3.clone() })),
        ];
        for (task, classes, samples) in manifests {
            let m = LabelledManifest { classes, samples };
            let p = out.join(format!("{task}_{split}.tsv"));
            std::fs::write(&p, m.to_tsv(out)).map_err(|e| TaskError::file(&p, e))?;
        }
    }
    // unlabelled pretraining manifest: training split only (no leakage into val/test)
    let mut pre = Manifest::default();
    for r in &rows[..n_train] {
        pre.samples.push(Sample { path: rel(&r.0, out), modality: Modality::Volume3d, label: None, spacing: Some(spacing_xyz) });
        pre.samples.push(Sample { path: rel(&r.2, out), modality: Modality::Image2d, label: None, spacing: None });
    }
    let p = out.join("pretrain.tsv");
    std::fs::write(&p, pre.to_tsv()).map_err(|e| TaskError::file(&p, e))?;
    Ok(PhantomSummary { train: n_train, val: n_val, test: n_test, lesions })
}

fn rel(p: &Path, base: &Path) -> PathBuf {
    p.strip_prefix(base).map(Path::to_path_buf).unwrap_or_else(|_| p.to_path_buf())
}
