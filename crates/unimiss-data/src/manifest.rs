//! Sample lists: our TSV manifest and the official list-file format.
//!
//! **TSV manifest** (`data-manifests/*.tsv`): one sample per line, tab-separated columns
//! `path  modality  [label]  [spacing]`. `modality` is `2d` or `3d`; `label` is free text
//! (empty or `-` for none); `spacing` is `sx,sy,sz` in mm in the NIfTI (x, y, z) order. Relative
//! paths resolve against the manifest file's folder. Blank lines and lines starting with `#` are
//! skipped, as is a first line starting with `path<TAB>` (a column header). Paths may contain
//! spaces.
//!
//! **Official list** (`2D_images.txt`, `3D_images.txt`): one path per line, relative to a data
//! root. Unlike the official loader, which keeps only the first whitespace token, the whole line
//! is the path (so paths with spaces work); an optional label follows a TAB.

use std::path::{Path, PathBuf};

pub use unimiss_ops::Modality;

use crate::error::{DataError, Result};

/// One entry of a manifest.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Absolute, or relative to the working directory (already resolved against the manifest).
    pub path: PathBuf,
    pub modality: Modality,
    pub label: Option<String>,
    /// Declared voxel size in mm, NIfTI (x, y, z) order (informational; readers use the header).
    pub spacing: Option<[f64; 3]>,
}

/// A list of samples of either modality.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Manifest {
    pub samples: Vec<Sample>,
}

/// Joins `p` to `base` unless it is absolute.
pub fn resolve(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    String::from_utf8(bytes).map_err(|e| DataError::Manifest {
        path: path.to_path_buf(),
        line: 0,
        reason: format!("not UTF-8 text ({e})"),
    })
}

impl Manifest {
    /// Reads a TSV manifest; relative paths resolve against its folder.
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = read_text(path)?;
        let base = path.parent().unwrap_or(Path::new(""));
        Self::parse(&text, base, path)
    }

    /// Parses TSV manifest text; `origin` names the source in errors.
    pub fn parse(text: &str, base: &Path, origin: &Path) -> Result<Self> {
        let mut samples = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty()
                || line.starts_with('#')
                || (i == 0 && line.starts_with("path\t"))
            {
                continue;
            }
            let err = |reason: String| DataError::Manifest {
                path: origin.to_path_buf(),
                line: i + 1,
                reason,
            };
            let cols: Vec<&str> = line.split('\t').collect();
            if cols.len() < 2 || cols.len() > 4 {
                return Err(err(format!(
                    "expected 2 to 4 tab-separated columns (path, modality, [label], [spacing]), found {}",
                    cols.len()
                )));
            }
            if cols[0].trim().is_empty() {
                return Err(err("empty path".into()));
            }
            let modality = cols[1].parse::<Modality>().map_err(err)?;
            let label = cols
                .get(2)
                .map(|s| s.trim())
                .filter(|s| !s.is_empty() && *s != "-")
                .map(String::from);
            let spacing = match cols
                .get(3)
                .map(|s| s.trim())
                .filter(|s| !s.is_empty() && *s != "-")
            {
                None => None,
                Some(s) => Some(parse_spacing(s).map_err(err)?),
            };
            samples.push(Sample {
                path: resolve(base, cols[0]),
                modality,
                label,
                spacing,
            });
        }
        Ok(Manifest { samples })
    }

    /// Reads an official list file: each whole line is a path relative to `root` (label after a
    /// TAB, optional); every entry gets `modality`.
    pub fn read_official_list(
        list: impl AsRef<Path>,
        root: impl AsRef<Path>,
        modality: Modality,
    ) -> Result<Self> {
        let list = list.as_ref();
        let text = read_text(list)?;
        Ok(Self::parse_official_list(&text, root.as_ref(), modality))
    }

    /// Parses official list text (never fails: any non-blank line is a path).
    pub fn parse_official_list(text: &str, root: &Path, modality: Modality) -> Self {
        let samples = text
            .lines()
            .map(|l| l.trim_end_matches('\r'))
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let (p, label) = match l.rsplit_once('\t') {
                    Some((p, lab)) if !lab.trim().is_empty() => (p, Some(lab.trim().to_string())),
                    Some((p, _)) => (p, None),
                    None => (l, None),
                };
                Sample {
                    path: resolve(root, p),
                    modality,
                    label,
                    spacing: None,
                }
            })
            .collect();
        Manifest { samples }
    }

    /// The samples of one modality, in manifest order.
    pub fn of_modality(&self, m: Modality) -> Vec<Sample> {
        self.samples
            .iter()
            .filter(|s| s.modality == m)
            .cloned()
            .collect()
    }

    /// The manifest as TSV text (paths written as given).
    pub fn to_tsv(&self) -> String {
        let mut s = String::from("path\tmodality\tlabel\tspacing\n");
        for x in &self.samples {
            let sp = x
                .spacing
                .map(|[a, b, c]| format!("{a},{b},{c}"))
                .unwrap_or_else(|| "-".into());
            let label = x.label.clone().unwrap_or_else(|| "-".into());
            s.push_str(&format!(
                "{}\t{}\t{label}\t{sp}\n",
                x.path.display(),
                x.modality
            ));
        }
        s
    }
}

/// Parses `a,b,c` (positive finite numbers).
pub fn parse_spacing(s: &str) -> std::result::Result<[f64; 3], String> {
    let v: Vec<&str> = s.split(',').collect();
    if v.len() != 3 {
        return Err(format!(
            "spacing {s:?} must be three comma-separated numbers"
        ));
    }
    let mut out = [0.0; 3];
    for (o, t) in out.iter_mut().zip(&v) {
        let x: f64 = t
            .trim()
            .parse()
            .map_err(|_| format!("spacing value {t:?} is not a number"))?;
        if !(x.is_finite() && x > 0.0) {
            return Err(format!("spacing value {x} must be positive and finite"));
        }
        *o = x;
    }
    Ok(out)
}
