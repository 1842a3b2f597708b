//! A labelled synthetic benchmark in the spirit of MONAI's test-image generators, built so that
//! self-supervised features have something to find: the anatomy varies (organ position, size,
//! shape, intensity and texture; lesions of varied size and contrast; noise, blur and voxel
//! size vary per case) and the labels depend on it (see [`anatomy`]). The 2D images are
//! projections of the same volumes, as UniMiSS assumes (X-rays and CT share anatomy).
//!
//! Every case `k` is drawn from a generator seeded by `(seed, k)` only, so a case does not depend
//! on `count`. Per case:
//! - `ct/case_k.nii.gz`: a CT-like volume (int16 HU) of `dims` = (D, H, W); its voxel size is
//!   `spacing` times a per-case factor in [0.8, 1.25] (one for D, one for H and W);
//! - `ct/case_k_seg.nii.gz`: the organ label map (0 background, 1 liver, 2 spleen, 3 kidney);
//!   `ct/lesion/case_k.nii.gz`: the lesion mask (0/1, empty without a lesion; in a subfolder so
//!   that `predict` on `ct/` does not take it for an image);
//! - `xray/case_k.png`: a radiograph-like projection (`size_2d`²),
//!   `xray/case_k_{liver,spleen,kidney}.png` the projected organ masks (0/255, overlapping) and
//!   `xray/lesion/case_k.png` the projected lesion;
//! - three labels: `finding` (none / mass / nodules, see [`findings`]: visible in both
//!   modalities, anywhere in a body whose pose varies: the label with headroom between pixels
//!   and a good representation), `lesion` (0/1: a small liver lesion, hardly visible in the
//!   projections) and `liver_large` (0/1, the liver fills more than
//!   [`anatomy::LIVER_LARGE_FRACTION`] of the grid), the last two read off the masks.
//!
//! Manifests (see [`unimiss_data::labelled`]): `{cls3d,seg3d,cls2d,seg2d}_{train,val,test}.tsv` (the
//! classification label is `finding`), `{task}_train_10pct.tsv` (the first 10 % of the training
//! split, at least 2 cases: the few-label setting), `pretrain.tsv` (the data crate's format, no
//! labels: the training split's volumes and projections for self-supervised pretraining), and
//! `eval_finding.tsv`, `eval_lesion.tsv` and `eval_liver.tsv` (the data crate's format with a label column, both
//! modalities of the val and test cases: the kNN monitor's held-out set). The split is the first
//! 60 % train, then val and test (at least one case each).

pub mod anatomy;
pub mod findings;
pub mod projection;

use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use unimiss_data::nifti::{Datatype, NiftiHeader, NiftiVersion, OutputType};
pub use unimiss_data::write::{to_file_order, write_png, write_volume};
use unimiss_data::{Manifest, Modality, Sample};

use crate::error::{Result, TaskError};
use unimiss_data::labelled::{LabelledManifest, LabelledSample};
pub use anatomy::{CtCase, LIVER_LARGE_FRACTION, ORGANS, ct_case};
pub use findings::{FINDINGS, Findings, Pose};
pub use projection::{XrayCase, project};

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct PhantomConfig {
    pub count: usize,
    pub seed: u64,
    /// Volume size (D, H, W).
    pub dims: [usize; 3],
    /// Typical voxel size (mm) along (D, H, W); each case scales it by a factor in [0.8, 1.25]
    /// (one for D, one shared by H and W).
    pub spacing: [f64; 3],
    /// Side of the square projections.
    pub size_2d: usize,
}

impl Default for PhantomConfig {
    fn default() -> Self {
        Self { count: 40, seed: 0, dims: [32, 96, 96], spacing: [2.5, 0.9, 0.9], size_2d: 128 }
    }
}

/// Counts of a generated set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhantomSummary {
    pub train: usize,
    pub val: usize,
    pub test: usize,
    pub lesions: usize,
    /// Cases labelled `liver_large`.
    pub large_livers: usize,
    /// Cases per finding class ([`FINDINGS`] order).
    pub findings: [usize; 3],
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
    let (f_d, f_hw) = (rng.random_range(0.8..1.25), rng.random_range(0.8..1.25));
    let spacing = [cfg.spacing[0] * f_d, cfg.spacing[1] * f_hw, cfg.spacing[2] * f_hw];
    let findings = Findings::draw(cfg.seed, k, cfg.dims, spacing);
    let ct = ct_case(&mut rng, cfg.dims, spacing, &findings);
    let xr = project(&ct, cfg.size_2d, &mut rng);
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

/// The files and labels of one written case.
struct Row {
    ct: PathBuf,
    seg: PathBuf,
    xray: PathBuf,
    masks: Vec<PathBuf>,
    spacing_xyz: [f64; 3],
    lesion: bool,
    liver_large: bool,
    finding: usize,
}

fn write_case(out: &Path, cfg: &PhantomConfig, k: usize) -> Result<Row> {
    let (ct, xr) = phantom_case(cfg, k);
    let header = nifti_header(ct.spacing);
    let [sd, sh, sw] = ct.spacing;
    let img = out.join(format!("ct/case_{k:03}.nii.gz"));
    let seg = out.join(format!("ct/case_{k:03}_seg.nii.gz"));
    let les = out.join(format!("ct/lesion/case_{k:03}.nii.gz"));
    write_volume(&img, &ct.hu.iter().map(|v| v.round()).collect::<Vec<_>>(), cfg.dims, &header, OutputType::Int16)?;
    write_volume(&seg, &ct.labels.iter().map(|&l| l as f32).collect::<Vec<_>>(), cfg.dims, &header, OutputType::Int16)?;
    write_volume(&les, &ct.lesion_mask.iter().map(|&l| l as u8 as f32).collect::<Vec<_>>(), cfg.dims, &header, OutputType::Int16)?;
    let png = out.join(format!("xray/case_{k:03}.png"));
    write_png(&png, &xr.image, [xr.size, xr.size])?;
    let mut masks = Vec::new();
    for (name, m) in ORGANS.iter().zip(&xr.masks) {
        let p = out.join(format!("xray/case_{k:03}_{name}.png"));
        write_png(&p, m, [xr.size, xr.size])?;
        masks.push(p);
    }
    write_png(&out.join(format!("xray/lesion/case_{k:03}.png")), &xr.lesion_mask, [xr.size, xr.size])?;
    Ok(Row { ct: img, seg, xray: png, masks, spacing_xyz: [sh, sw, sd], lesion: ct.lesion, liver_large: ct.liver_large, finding: ct.finding })
}

fn write_text(p: &Path, text: String) -> Result<()> {
    std::fs::write(p, text).map_err(|e| TaskError::file(p, e))
}

/// Generates the benchmark under `out`; `progress(done, total)` is called after each case.
pub fn generate(out: &Path, cfg: &PhantomConfig, progress: &mut dyn FnMut(usize, usize)) -> Result<PhantomSummary> {
    let [n_train, n_val, n_test] = split_sizes(cfg.count)?;
    if cfg.dims.contains(&0) || cfg.size_2d == 0 || cfg.spacing.iter().any(|s| !(*s > 0.0)) {
        return Err(TaskError::Invalid(format!("phantoms: bad geometry {cfg:?}")));
    }
    for sub in ["ct", "xray", "ct/lesion", "xray/lesion"] {
        let d = out.join(sub);
        std::fs::create_dir_all(&d).map_err(|e| TaskError::file(&d, e))?;
    }
    let mut rows = Vec::with_capacity(cfg.count);
    for k in 0..cfg.count {
        rows.push(write_case(out, cfg, k)?);
        progress(k + 1, cfg.count);
    }
    let n_few = (n_train / 10).max(2).min(n_train);
    let splits = [("train", 0..n_train), ("train_10pct", 0..n_few), ("val", n_train..n_train + n_val), ("test", n_train + n_val..cfg.count)];
    let finding_classes: Vec<String> = FINDINGS.iter().map(|s| s.to_string()).collect();
    let mut seg_classes = vec!["background".to_string()];
    seg_classes.extend(ORGANS.iter().map(|s| s.to_string()));
    let organ_names: Vec<String> = ORGANS.iter().map(|s| s.to_string()).collect();
    let sample = |p: &Path, m: Modality, label: Option<String>, sp: Option<[f64; 3]>| Sample { path: p.to_path_buf(), modality: m, label, spacing: sp };
    for (split, range) in splits {
        let pick = |f: &dyn Fn(&Row) -> LabelledSample| -> Vec<LabelledSample> { rows[range.clone()].iter().map(f).collect() };
        let finding = |r: &Row| Some(r.finding.to_string());
        let manifests = [
            ("cls3d", finding_classes.clone(), pick(&|r| LabelledSample { sample: sample(&r.ct, Modality::Volume3d, finding(r), Some(r.spacing_xyz)), masks: vec![] })),
            ("seg3d", seg_classes.clone(), pick(&|r| LabelledSample { sample: sample(&r.ct, Modality::Volume3d, None, Some(r.spacing_xyz)), masks: vec![r.seg.clone()] })),
            ("cls2d", finding_classes.clone(), pick(&|r| LabelledSample { sample: sample(&r.xray, Modality::Image2d, finding(r), None), masks: vec![] })),
            ("seg2d", organ_names.clone(), pick(&|r| LabelledSample { sample: sample(&r.xray, Modality::Image2d, None, None), masks: r.masks.clone() })),
        ];
        for (task, classes, samples) in manifests {
            let m = LabelledManifest { classes, samples };
            write_text(&out.join(format!("{task}_{split}.tsv")), m.to_tsv(out))?;
        }
    }
    // unlabelled pretraining manifest: training split only (no leakage into val/test)
    let mut pre = Manifest::default();
    for r in &rows[..n_train] {
        pre.samples.push(sample(&rel(&r.ct, out), Modality::Volume3d, None, Some(r.spacing_xyz)));
        pre.samples.push(sample(&rel(&r.xray, out), Modality::Image2d, None, None));
    }
    write_text(&out.join("pretrain.tsv"), pre.to_tsv())?;
    // the kNN monitor's held-out sets: val + test, both modalities, one label each
    type Label = fn(&Row) -> usize;
    let labels: [(&str, Label); 3] =
        [("finding", |r| r.finding), ("lesion", |r| usize::from(r.lesion)), ("liver", |r| usize::from(r.liver_large))];
    for (name, label) in labels {
        let mut m = Manifest::default();
        for r in &rows[n_train..] {
            let l = Some(label(r).to_string());
            m.samples.push(sample(&rel(&r.ct, out), Modality::Volume3d, l.clone(), Some(r.spacing_xyz)));
            m.samples.push(sample(&rel(&r.xray, out), Modality::Image2d, l, None));
        }
        write_text(&out.join(format!("eval_{name}.tsv")), m.to_tsv())?;
    }
    let lesions = rows.iter().filter(|r| r.lesion).count();
    let large_livers = rows.iter().filter(|r| r.liver_large).count();
    let findings = std::array::from_fn(|c| rows.iter().filter(|r| r.finding == c).count());
    Ok(PhantomSummary { train: n_train, val: n_val, test: n_test, lesions, large_livers, findings })
}

fn rel(p: &Path, base: &Path) -> PathBuf {
    p.strip_prefix(base).map(Path::to_path_buf).unwrap_or_else(|_| p.to_path_buf())
}
