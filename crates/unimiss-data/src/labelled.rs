//! Labelled manifests: the TSV manifest ([`crate::manifest`], same parser) with its label and
//! mask columns and a class-name header, checked against what a task needs.
//!
//! ```text
//! #classes=background,liver,spleen,kidney
//! path  modality  label  spacing  mask
//! ct/case_000.nii.gz  3d  -  1.2,1.2,2.5  ct/case_000_seg.nii.gz
//! ```
//! (columns separated by one TAB each).
//! - Classification ([`Targets::ClassIndex`]): `label` is the class index (`0..classes`).
//! - 3D segmentation ([`Targets::LabelMap`]): one `mask` column, a NIfTI label map.
//! - 2D segmentation ([`Targets::Masks`]): one mask column per label (PNG/GIF, foreground > 0),
//!   multi-label.
//!
//! `#classes=` names the classes (for label maps, background first; for multi-label 2D masks,
//! one name per mask column). Relative paths resolve against the manifest's folder.

use std::path::Path;

pub use crate::manifest::LabelledSample;
use crate::manifest::{Modality, parse_table, read_text, write_table};
use crate::error::{DataError, Result};

/// What the rows of a labelled manifest must provide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Targets {
    /// A class index in the `label` column, no masks.
    ClassIndex,
    /// Exactly one mask column: a label map.
    LabelMap,
    /// One or more mask columns, the same number on every row (one binary mask per label).
    Masks,
}

/// A labelled manifest.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LabelledManifest {
    pub classes: Vec<String>,
    pub samples: Vec<LabelledSample>,
}

impl LabelledManifest {
    /// Reads a labelled manifest; an empty one is an error naming the file.
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = read_text(path)?;
        let m = Self::parse(&text, path.parent().unwrap_or(Path::new("")), path)?;
        if m.samples.is_empty() {
            return Err(DataError::BadManifest { path: path.to_path_buf(), reason: "the manifest lists no samples".into() });
        }
        Ok(m)
    }

    /// Reads a labelled manifest and [checks](Self::check) it: training, validation and test
    /// manifests alike.
    pub fn read_checked(path: impl AsRef<Path>, modality: Modality, targets: Targets) -> Result<Self> {
        let path = path.as_ref();
        let m = Self::read(path)?;
        m.check(path, modality, targets)?;
        Ok(m)
    }

    /// Parses manifest text; `origin` names the source in errors (with the line).
    pub fn parse(text: &str, base: &Path, origin: &Path) -> Result<Self> {
        let t = parse_table(text, base, origin, true)?;
        Ok(Self { classes: t.classes, samples: t.rows })
    }

    /// Checks that every sample has `modality` and the columns `targets` needs, so that a
    /// manifest unfit for a task fails when read, naming the manifest and the sample.
    pub fn check(&self, origin: &Path, modality: Modality, targets: Targets) -> Result<()> {
        let bad = |reason: String| DataError::BadManifest { path: origin.to_path_buf(), reason };
        let masks = self.samples.first().map_or(0, |s| s.masks.len());
        for s in &self.samples {
            let name = s.sample.path.display();
            if s.sample.modality != modality {
                return Err(bad(format!("{name}: modality {} where {modality} is needed", s.sample.modality)));
            }
            let n = s.masks.len();
            match targets {
                Targets::ClassIndex if n > 0 => return Err(bad(format!("{name}: {n} mask column(s) in a classification manifest"))),
                Targets::ClassIndex => {
                    self.label_of(s, origin)?;
                }
                Targets::LabelMap if n != 1 => return Err(bad(format!("{name}: {n} mask columns; a label map needs exactly one"))),
                Targets::Masks if n == 0 => return Err(bad(format!("{name}: no mask column; segmentation needs one mask per label"))),
                Targets::Masks if n != masks => return Err(bad(format!("{name}: {n} mask columns where the first sample has {masks}"))),
                Targets::LabelMap | Targets::Masks => {}
            }
        }
        if targets == Targets::Masks && !self.classes.is_empty() && self.classes.len() != masks {
            return Err(bad(format!("#classes= names {} labels but samples have {masks} masks", self.classes.len())));
        }
        if targets == Targets::ClassIndex && !self.classes.is_empty() {
            self.class_indices(self.classes.len(), origin)?;
        }
        Ok(())
    }

    /// The manifest as text, paths relative to `base` when they lie under it.
    pub fn to_tsv(&self, base: &Path) -> String {
        let rows = self.samples.iter().map(|s| (&s.sample, s.masks.as_slice()));
        write_table(&self.classes, rows, |p| p.strip_prefix(base).unwrap_or(p).display().to_string())
    }

    fn label_of(&self, s: &LabelledSample, origin: &Path) -> Result<i64> {
        let name = s.sample.path.display();
        let bad = |reason: String| DataError::BadManifest { path: origin.to_path_buf(), reason };
        let label = s.sample.label.as_deref().ok_or_else(|| bad(format!("{name}: no label")))?;
        label.parse().map_err(|_| bad(format!("{name}: label {label:?} is not a class index")))
    }

    /// The class index of sample `i` (its label parsed as an integer in `0..classes`).
    pub fn class_index(&self, i: usize, classes: usize, origin: &Path) -> Result<usize> {
        let s = self.samples.get(i).ok_or_else(|| DataError::BadManifest {
            path: origin.to_path_buf(),
            reason: format!("sample {i} asked of {} samples", self.samples.len()),
        })?;
        let v = self.label_of(s, origin)?;
        if v < 0 || v as usize >= classes {
            let what = format!("sample {}", s.sample.path.display());
            return Err(DataError::LabelOutOfRange { path: origin.to_path_buf(), what, label: v, classes });
        }
        Ok(v as usize)
    }

    /// The class index of every sample, in manifest order.
    pub fn class_indices(&self, classes: usize, origin: &Path) -> Result<Vec<usize>> {
        (0..self.samples.len()).map(|i| self.class_index(i, classes, origin)).collect()
    }
}
