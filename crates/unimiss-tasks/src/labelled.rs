//! Labelled manifests: the data crate's TSV (`path  modality  label  spacing`) extended with
//! mask columns, and a class-name header.
//!
//! ```text
//! #classes=background,liver,spleen,kidney
//! path	modality	label	spacing	mask
//! ct/case_000.nii.gz	3d	1	1.2,1.2,2.5	ct/case_000_seg.nii.gz
//! ```
//! - Classification: `label` is the class index (`0..classes`).
//! - 3D segmentation: one `mask` column, a NIfTI label map (`0..classes`).
//! - 2D segmentation: one mask column per label (PNG/GIF, foreground > 0), multi-label.
//!
//! `#classes=` names the classes (for segmentation maps, background first; for multi-label 2D
//! masks, one name per mask column). Relative paths resolve against the manifest's folder.

use std::path::{Path, PathBuf};

use unimiss_data::manifest::{parse_spacing, resolve};
use unimiss_data::{Modality, Sample};

use crate::error::{Result, TaskError};

/// One labelled sample.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledSample {
    pub sample: Sample,
    /// Mask files (none for classification).
    pub masks: Vec<PathBuf>,
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
        let text = std::fs::read_to_string(path).map_err(|e| TaskError::file(path, e))?;
        let base = path.parent().unwrap_or(Path::new(""));
        let m = Self::parse(&text, base).map_err(|e| TaskError::file(path, e))?;
        if m.samples.is_empty() {
            return Err(TaskError::file(path, "the manifest lists no samples"));
        }
        Ok(m)
    }

    /// Parses manifest text; errors are plain messages with the line number.
    pub fn parse(text: &str, base: &Path) -> std::result::Result<Self, String> {
        let mut m = Self::default();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if let Some(c) = line.strip_prefix("#classes=") {
                m.classes = c.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
                continue;
            }
            if line.trim().is_empty() || line.starts_with('#') || line.starts_with("path\t") {
                continue;
            }
            let err = |r: String| format!("line {}: {r}", i + 1);
            let cols: Vec<&str> = line.split('\t').collect();
            if cols.len() < 2 || cols[0].trim().is_empty() {
                return Err(err("expected at least the columns path and modality".into()));
            }
            let modality = cols[1].parse::<Modality>().map_err(err)?;
            let opt = |k: usize| cols.get(k).map(|s| s.trim()).filter(|s| !s.is_empty() && *s != "-");
            let spacing = opt(3).map(parse_spacing).transpose().map_err(err)?;
            let masks = (4..cols.len()).filter_map(opt).map(|p| resolve(base, p)).collect();
            m.samples.push(LabelledSample {
                sample: Sample { path: resolve(base, cols[0]), modality, label: opt(2).map(String::from), spacing },
                masks,
            });
        }
        Ok(m)
    }

    /// The manifest as text, paths relative to `base` when they lie under it.
    pub fn to_tsv(&self, base: &Path) -> String {
        let rel = |p: &Path| p.strip_prefix(base).unwrap_or(p).display().to_string();
        let mut s = String::new();
        if !self.classes.is_empty() {
            s.push_str(&format!("#classes={}\n", self.classes.join(",")));
        }
        s.push_str("path\tmodality\tlabel\tspacing\tmask\n");
        for x in &self.samples {
            let sp = x.sample.spacing.map(|[a, b, c]| format!("{a},{b},{c}")).unwrap_or_else(|| "-".into());
            s.push_str(&format!(
                "{}\t{}\t{}\t{sp}",
                rel(&x.sample.path),
                x.sample.modality,
                x.sample.label.as_deref().unwrap_or("-")
            ));
            for mk in &x.masks {
                s.push('\t');
                s.push_str(&rel(mk));
            }
            s.push('\n');
        }
        s
    }

    /// The class index of sample `i` (its label parsed as an integer in `0..classes`).
    pub fn class_index(&self, i: usize, classes: usize, origin: &Path) -> Result<usize> {
        let s = &self.samples[i].sample;
        let label = s.label.as_deref().ok_or_else(|| TaskError::file(origin, format!("{}: no label", s.path.display())))?;
        let v: i64 = label
            .parse()
            .map_err(|_| TaskError::file(origin, format!("{}: label {label:?} is not a class index", s.path.display())))?;
        if v < 0 || v as usize >= classes {
            return Err(TaskError::LabelOutOfRange { what: format!("{} ({})", origin.display(), s.path.display()), label: v, classes });
        }
        Ok(v as usize)
    }
}

/// Pre-flight of a labelled manifest: every image and mask checked ([`unimiss_data::preflight`]),
/// each problem named with its manifest line. Each line is parsed alone, which yields its sample
/// exactly as the whole-file parse does (no rule here spans lines).
pub fn preflight(path: &Path) -> Result<unimiss_data::preflight::Report> {
    use unimiss_data::preflight::{Entry, check_entries};
    let text = std::fs::read_to_string(path).map_err(|e| TaskError::file(path, e))?;
    let base = path.parent().unwrap_or(Path::new(""));
    let mut entries = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let m = LabelledManifest::parse(line, base).map_err(|e| TaskError::file(path, format!("line {}: {e}", i + 1)))?;
        for s in m.samples {
            let modality = s.sample.modality;
            for p in std::iter::once(s.sample.path).chain(s.masks) {
                entries.push(Entry { path: p, modality, line: Some(i + 1) });
            }
        }
    }
    Ok(check_entries(Some(path.to_path_buf()), &entries))
}
