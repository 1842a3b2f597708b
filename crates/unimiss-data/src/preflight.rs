//! Pre-flight: every manifest entry checked, in parallel, before a run starts, so a missing or
//! corrupt file stops the run with a list instead of failing hours in.
//!
//! Per entry: the file exists and is not empty; its content is what the modality says (a NIfTI
//! volume for `3d`, a PNG/JPEG for `2d`); the header parses ([`NiftiHeader::parse`], the image
//! crate's dimension probe) and gives a plausible size (no zero side, within the readers' limits
//! [`DEFAULT_MAX_VOXELS`] and [`MAX_PIXELS`]); a volume holds all its voxel bytes (a plain file
//! by its length, a gzip by inflating it to a sink, which also finds truncated or corrupt
//! streams). Voxels and pixels are not decoded: NaN voxels or a corrupt PNG body are still found
//! by the loader, with the file named.
//!
//! ```no_run
//! # fn main() -> Result<(), unimiss_data::DataError> {
//! let manifest = unimiss_data::Manifest::read("data-manifests/sample.tsv")?;
//! let report = unimiss_data::preflight::check(&manifest);
//! if !report.is_clean() {
//!     eprintln!("{report}");
//!     report.write_tsv("runs/x/skipped.tsv")?;
//! }
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::error::{DataError, Result};
use crate::image2d::MAX_PIXELS;
use crate::manifest::{Manifest, Modality};
use crate::nifti::{DEFAULT_MAX_VOXELS, NiftiHeader};

/// Bytes read for a NIfTI header (NIfTI-2's length; NIfTI-1 uses the first 348).
const HEADER_BYTES: u64 = 540;

/// One file to check, and where the manifest lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub path: PathBuf,
    pub modality: Modality,
    /// 1-based line of the manifest, when known.
    pub line: Option<usize>,
}

/// A problem with one entry.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    /// 0-based position in the checked list.
    pub index: usize,
    pub entry: Entry,
    pub reason: String,
}

/// The result of a pre-flight check: every problem, in manifest order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    /// The manifest checked (names it in the listing), when known.
    pub origin: Option<PathBuf>,
    pub checked: usize,
    problems: Vec<Problem>,
}

impl Report {
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }

    /// The manifest without the entries that have problems (for `on_bad_sample = "skip"`).
    pub fn retain_clean(&self, manifest: &Manifest) -> Manifest {
        let bad: std::collections::HashSet<usize> = self.problems.iter().map(|p| p.index).collect();
        let samples = manifest.samples.iter().enumerate().filter(|(i, _)| !bad.contains(i)).map(|(_, s)| s.clone()).collect();
        Manifest { samples }
    }

    /// The problems as TSV (`line  path  modality  problem`, with a header line).
    pub fn to_tsv(&self) -> String {
        let clean = |s: &str| s.replace(['\t', '\n', '\r'], " ");
        let mut out = String::from("line\tpath\tmodality\tproblem\n");
        for p in &self.problems {
            let line = p.entry.line.map_or_else(|| "-".to_string(), |l| l.to_string());
            let path = clean(&p.entry.path.to_string_lossy());
            out.push_str(&format!("{line}\t{path}\t{}\t{}\n", p.entry.modality, clean(&p.reason)));
        }
        out
    }

    /// Writes [`Report::to_tsv`] to `path` (e.g. `RUN_DIR/skipped.tsv`).
    pub fn write_tsv(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        std::fs::write(path, self.to_tsv()).map_err(|e| DataError::io(path, e))
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let origin = self.origin.as_ref().map(|o| o.display().to_string()).unwrap_or_else(|| "manifest".into());
        if self.is_clean() {
            return write!(f, "pre-flight: all {} entries of {origin} are readable", self.checked);
        }
        write!(f, "pre-flight: {} of {} entries of {origin} have problems:", self.problems.len(), self.checked)?;
        for p in &self.problems {
            let at = match p.entry.line {
                Some(l) => format!("{origin}:{l}"),
                None => format!("{origin} entry {}", p.index + 1),
            };
            write!(f, "\n  {at}: {} ({}): {}", p.entry.path.display(), p.entry.modality, p.reason)?;
        }
        Ok(())
    }
}

/// Checks every sample of `manifest` (entries numbered by position; see [`check_file`] for
/// manifest line numbers).
pub fn check(manifest: &Manifest) -> Report {
    let entries: Vec<Entry> =
        manifest.samples.iter().map(|s| Entry { path: s.path.clone(), modality: s.modality, line: None }).collect();
    check_entries(None, &entries)
}

/// Reads the TSV manifest at `path` and checks every sample, naming each problem's line.
pub fn check_file(path: impl AsRef<Path>) -> Result<Report> {
    Ok(read_checked(path)?.1)
}

/// Reads the TSV manifest at `path` once and checks every sample (each problem names its
/// line): the manifest and the report, so a run reads its manifest a single time.
pub fn read_checked(path: impl AsRef<Path>) -> Result<(Manifest, Report)> {
    let path = path.as_ref();
    let text = crate::manifest::read_text(path)?;
    let manifest = Manifest::parse(&text, path.parent().unwrap_or(Path::new("")), path)?;
    let lines = sample_lines(&text, path, manifest.samples.len());
    let entries: Vec<Entry> = manifest
        .samples
        .iter()
        .zip(lines)
        .map(|(s, line)| Entry { path: s.path.clone(), modality: s.modality, line })
        .collect();
    let report = check_entries(Some(path.to_path_buf()), &entries);
    Ok((manifest, report))
}

/// Checks every image, volume and mask of the labelled manifest at `origin` (fine-tuning,
/// evaluation), naming each problem's line. Each line is parsed alone, which yields its samples
/// exactly as the whole-file parse does.
pub fn check_labelled(origin: &Path) -> Result<Report> {
    let text = crate::manifest::read_text(origin)?;
    let base = origin.parent().unwrap_or(Path::new(""));
    let mut entries = Vec::new();
    for (i, line) in text.lines().enumerate() {
        for s in crate::labelled::LabelledManifest::parse(line, base, origin)?.samples {
            let modality = s.sample.modality;
            for p in std::iter::once(s.sample.path).chain(s.masks) {
                entries.push(Entry { path: p, modality, line: Some(i + 1) });
            }
        }
    }
    Ok(check_entries(Some(origin.to_path_buf()), &entries))
}

/// The line of each of the `n` samples: each line is parsed alone by [`Manifest::parse`] (after
/// a blank line, so the first-line header rule applies only to line 1), which yields a sample
/// exactly for the lines the whole-file parse turns into samples.
fn sample_lines(text: &str, origin: &Path, n: usize) -> Vec<Option<usize>> {
    let base = Path::new("");
    let mut lines: Vec<Option<usize>> = text
        .lines()
        .enumerate()
        .filter(|(i, line)| {
            let alone = if *i == 0 { line.to_string() } else { format!("\n{line}") };
            Manifest::parse(&alone, base, origin).is_ok_and(|m| m.samples.len() == 1)
        })
        .map(|(i, _)| Some(i + 1))
        .collect();
    lines.resize(n, None);
    lines
}

/// Checks `entries` in parallel; `origin` names the manifest in the listing.
pub fn check_entries(origin: Option<PathBuf>, entries: &[Entry]) -> Report {
    let mut problems: Vec<Problem> = entries
        .par_iter()
        .enumerate()
        .filter_map(|(index, e)| {
            check_one(&e.path, e.modality).err().map(|reason| Problem { index, entry: e.clone(), reason })
        })
        .collect();
    problems.sort_by_key(|p| p.index);
    Report { origin, checked: entries.len(), problems }
}

/// What the first bytes say the file is.
fn sniff(head: &[u8]) -> Option<Modality> {
    let gzip = head.starts_with(&[0x1f, 0x8b]);
    let nifti = head.len() >= 4 && {
        let b = [head[0], head[1], head[2], head[3]];
        [348, 540].contains(&i32::from_le_bytes(b)) || [348, 540].contains(&i32::from_be_bytes(b))
    };
    let png = head.starts_with(b"\x89PNG");
    let jpeg = head.starts_with(&[0xff, 0xd8]);
    match (gzip || nifti, png || jpeg) {
        (true, _) => Some(Modality::Volume3d),
        (_, true) => Some(Modality::Image2d),
        _ => None,
    }
}

/// One file; `Err` is the problem in words (the path is listed beside it).
fn check_one(path: &Path, modality: Modality) -> std::result::Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot open: {e}"))?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.len() == 0 {
        return Err("empty file (0 bytes)".into());
    }
    let mut head = Vec::with_capacity(8);
    std::fs::File::open(path)
        .and_then(|f| f.take(8).read_to_end(&mut head))
        .map_err(|e| format!("cannot read: {e}"))?;
    match (modality, sniff(&head)) {
        (Modality::Volume3d, Some(Modality::Image2d)) => Err("listed as 3d but the file is a PNG/JPEG image".into()),
        (Modality::Image2d, Some(Modality::Volume3d)) => Err("listed as 2d but the file is a NIfTI volume (or gzip)".into()),
        (Modality::Volume3d, _) => check_volume(path, meta.len(), head.starts_with(&[0x1f, 0x8b])),
        (Modality::Image2d, _) => check_image(path),
    }
}

/// Strips the path the crate's errors start with (the listing names the file already).
fn reason(path: &Path, e: DataError) -> String {
    let s = e.to_string();
    s.strip_prefix(&format!("{}: ", path.display())).map(str::to_string).unwrap_or(s)
}

fn check_volume(path: &Path, file_len: u64, gzip: bool) -> std::result::Result<(), String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let mut stream: Box<dyn Read> =
        if gzip { Box::new(flate2::read::GzDecoder::new(std::io::BufReader::new(file))) } else { Box::new(file) };
    let mut hdr = Vec::with_capacity(HEADER_BYTES as usize);
    let what = if gzip { "corrupt or truncated gzip stream" } else { "read error" };
    stream.by_ref().take(HEADER_BYTES).read_to_end(&mut hdr).map_err(|e| format!("{what}: {e}"))?;
    let h = NiftiHeader::parse(path, &hdr).map_err(|e| reason(path, e))?;
    if let Some(axis) = h.dims.iter().position(|&d| d == 0) {
        return Err(format!("dimension {} is 0 ({:?})", ["x", "y", "z"][axis], h.dims));
    }
    let voxels = h.voxel_count();
    if voxels > u128::from(DEFAULT_MAX_VOXELS) {
        return Err(format!("{:?} = {voxels} voxels, above the reader's limit of {DEFAULT_MAX_VOXELS}", h.dims));
    }
    let need = u128::from(h.vox_offset).saturating_add(h.data_bytes());
    let have = if gzip {
        let rest = std::io::copy(&mut stream, &mut std::io::sink()).map_err(|e| format!("{what}: {e}"))?;
        hdr.len() as u128 + u128::from(rest)
    } else {
        u128::from(file_len)
    };
    if have < need {
        return Err(format!(
            "truncated: {:?} voxels of {} need {need} bytes (with the {}-byte header), the {}file has {have}",
            h.dims,
            h.datatype.size(),
            h.vox_offset,
            if gzip { "inflated " } else { "" }
        ));
    }
    Ok(())
}

fn check_image(path: &Path) -> std::result::Result<(), String> {
    let reader = image::ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .map_err(|e| format!("cannot read: {e}"))?;
    match reader.format() {
        Some(image::ImageFormat::Png | image::ImageFormat::Jpeg | image::ImageFormat::Gif) => {}
        Some(other) => return Err(format!("a {other:?} image; the reader takes PNG, JPEG or GIF")),
        None => return Err("not a PNG or JPEG file".into()),
    }
    let (w, h) = reader.into_dimensions().map_err(|e| format!("unreadable image header: {e}"))?;
    if w == 0 || h == 0 {
        return Err(format!("image of {w}×{h} pixels"));
    }
    if u64::from(w) * u64::from(h) > MAX_PIXELS {
        return Err(format!("image of {w}×{h} pixels, above the reader's limit of {MAX_PIXELS}"));
    }
    Ok(())
}
