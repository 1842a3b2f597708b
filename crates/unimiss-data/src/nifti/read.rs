//! Bounded NIfTI reader: `.nii` or gzip (`.nii.gz`, detected by its magic bytes).
//!
//! The file is read whole (one `read`), then parsed from memory. A gzip stream is inflated by
//! zlib-rs (through flate2's `Decompress`, which also checks the gzip header) in a few large
//! calls: the header into a small buffer, then the voxel bytes straight into one buffer of the
//! exact size the header gives, so there are no intermediate copies and no regrowth.

use std::borrow::Cow;
use std::path::Path;

use flate2::{Decompress, FlushDecompress, Status};

use super::NiftiImage;
use super::decode::{Layout, decode_voxels};
use super::header::{NIFTI2_HEADER_LEN, NiftiHeader, header_len};
use crate::error::{DataError, Result};

/// Default limit on the voxel count of one file: 2^30 voxels (4 GiB as f32), far above any CT.
pub const DEFAULT_MAX_VOXELS: u64 = 1 << 30;

/// Largest header extension (bytes between the header and the voxel data) the reader accepts.
const MAX_EXTENSION_BYTES: u64 = 64 << 20;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Reads a NIfTI file (NIfTI-1 or -2, either byte order, plain or gzip) in the file's own
/// (x, y, z) order with scaling applied, refusing files above `max_voxels`.
pub fn read_nifti_image_limited(path: &Path, max_voxels: u64) -> Result<NiftiImage> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    read_nifti_bytes(path, &bytes, max_voxels)
}

/// Parses a whole NIfTI file held in memory (plain or gzip); `name` is used in errors.
/// This is the fuzzing entry point.
pub fn read_nifti_bytes(name: &Path, bytes: &[u8], max_voxels: u64) -> Result<NiftiImage> {
    let (header, data) = decode(name, bytes, max_voxels, Layout::File)?;
    Ok(NiftiImage { header, data })
}

/// Reads a NIfTI file straight into `layout` order: (header, voxels).
pub(crate) fn read_layout(
    path: &Path,
    max_voxels: u64,
    layout: Layout,
) -> Result<(NiftiHeader, Vec<f32>)> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    decode(path, &bytes, max_voxels, layout)
}

fn decode(
    path: &Path,
    bytes: &[u8],
    max_voxels: u64,
    layout: Layout,
) -> Result<(NiftiHeader, Vec<f32>)> {
    let mut src = if bytes.starts_with(&GZIP_MAGIC) {
        Source::Gzip {
            input: bytes,
            dec: Decompress::new_gzip(15),
        }
    } else {
        Source::Plain { bytes, pos: 0 }
    };
    let mut hdr = [0u8; NIFTI2_HEADER_LEN];
    let got = src.fill(path, &mut hdr[..4])?;
    if got < 4 {
        return Err(DataError::BadHeader {
            path: path.to_path_buf(),
            reason: format!("file has only {got} bytes"),
        });
    }
    let len = header_len(path, [hdr[0], hdr[1], hdr[2], hdr[3]])?;
    let got = 4 + src.fill(path, &mut hdr[4..len])?;
    let header = NiftiHeader::parse(path, &hdr[..got])?;
    let voxels = header.voxel_count();
    if voxels > u128::from(max_voxels) {
        return Err(DataError::TooLarge {
            path: path.to_path_buf(),
            voxels,
            bytes: header.data_bytes(),
            limit: max_voxels,
        });
    }
    // <= 2^30 * 8 after the check above (for sane limits); saturate for absurd ones.
    let data_bytes = u64::try_from(header.data_bytes()).unwrap_or(u64::MAX);
    let ext = header.vox_offset.saturating_sub(len as u64);
    if ext > MAX_EXTENSION_BYTES {
        return Err(DataError::BadHeader {
            path: path.to_path_buf(),
            reason: format!(
                "vox_offset {} leaves {ext} bytes of extensions",
                header.vox_offset
            ),
        });
    }
    if let Source::Plain { bytes, .. } = &src {
        let need = header.vox_offset.saturating_add(data_bytes);
        if (bytes.len() as u64) < need {
            return Err(DataError::Truncated {
                path: path.to_path_buf(),
                expected: data_bytes,
                found: (bytes.len() as u64).saturating_sub(header.vox_offset),
            });
        }
    }
    if src.skip(path, ext)? < ext {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            expected: data_bytes,
            found: 0,
        });
    }
    let raw = src.take(path, data_bytes)?;
    if (raw.len() as u64) < data_bytes {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            expected: data_bytes,
            found: raw.len() as u64,
        });
    }
    let data = decode_voxels(path, &header, &raw, layout)?;
    Ok((header, data))
}

/// The decompressed byte stream of a file held in memory.
enum Source<'a> {
    Plain { bytes: &'a [u8], pos: usize },
    Gzip { input: &'a [u8], dec: Decompress },
}

impl Source<'_> {
    /// Fills `buf` from the stream; returns the count filled (less at the end of the stream).
    fn fill(&mut self, path: &Path, buf: &mut [u8]) -> Result<usize> {
        match self {
            Source::Plain { bytes, pos } => {
                let n = buf.len().min(bytes.len() - *pos);
                buf[..n].copy_from_slice(&bytes[*pos..*pos + n]);
                *pos += n;
                Ok(n)
            }
            Source::Gzip { input, dec } => {
                let mut got = 0;
                while got < buf.len() {
                    let (n, end) = inflate(path, input, dec, &mut buf[got..])?;
                    got += n;
                    if end {
                        break;
                    }
                }
                Ok(got)
            }
        }
    }

    /// Skips `n` bytes; returns the count skipped.
    fn skip(&mut self, path: &Path, n: u64) -> Result<u64> {
        let mut scratch = vec![0u8; n.min(1 << 16) as usize];
        let mut done = 0;
        while done < n {
            let want = (n - done).min(scratch.len() as u64) as usize;
            let got = self.fill(path, &mut scratch[..want])?;
            done += got as u64;
            if got < want {
                break;
            }
        }
        Ok(done)
    }

    /// The next `n` bytes (fewer at the end of the stream): borrowed from a plain file,
    /// inflated into one buffer of at most `n` bytes for gzip.
    fn take(&mut self, path: &Path, n: u64) -> Result<Cow<'_, [u8]>> {
        match self {
            Source::Plain { bytes, pos } => {
                let end = pos
                    .saturating_add(usize::try_from(n).unwrap_or(usize::MAX))
                    .min(bytes.len());
                let out = &bytes[*pos..end];
                *pos = end;
                Ok(Cow::Borrowed(out))
            }
            Source::Gzip { input, .. } => {
                // A lying header cannot make us allocate more than the input can inflate to
                // (deflate expands at most 1032:1).
                let cap = n.min((input.len() as u64).saturating_mul(1032));
                let mut out = vec![0u8; usize::try_from(cap).unwrap_or(usize::MAX)];
                let got = self.fill(path, &mut out)?;
                out.truncate(got);
                Ok(Cow::Owned(out))
            }
        }
    }
}

/// One inflate call into `out`: (bytes written, whether the stream is over). Consumed input is
/// removed from `input`; a following gzip member starts a new decompressor.
fn inflate(
    path: &Path,
    input: &mut &[u8],
    dec: &mut Decompress,
    out: &mut [u8],
) -> Result<(usize, bool)> {
    let (in0, out0) = (dec.total_in(), dec.total_out());
    let status = dec
        .decompress(input, out, FlushDecompress::None)
        .map_err(|e| corrupt(path, format!("corrupt gzip stream ({e})")))?;
    let used = (dec.total_in() - in0) as usize;
    let made = (dec.total_out() - out0) as usize;
    *input = &input[used..];
    match status {
        Status::StreamEnd if input.starts_with(&GZIP_MAGIC) => {
            *dec = Decompress::new_gzip(15);
            Ok((made, false))
        }
        Status::StreamEnd => Ok((made, true)),
        _ if made == 0 && used == 0 && !out.is_empty() => Err(corrupt(
            path,
            "corrupt gzip stream: the compressed stream ends early".into(),
        )),
        _ => Ok((made, false)),
    }
}

fn corrupt(path: &Path, reason: String) -> DataError {
    DataError::Corrupt {
        path: path.to_path_buf(),
        reason,
    }
}

/// The file's bytes, inflated when gzip (for measuring the deflate backend).
pub fn read_decompressed(path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    if !bytes.starts_with(&GZIP_MAGIC) {
        return Ok(bytes);
    }
    // The gzip trailer's ISIZE (size mod 2^32) sizes the output buffer.
    let isize = bytes.len().checked_sub(4).map_or(0, |k| {
        u32::from_le_bytes([bytes[k], bytes[k + 1], bytes[k + 2], bytes[k + 3]]) as usize
    });
    let mut out = vec![0u8; isize.min(bytes.len().saturating_mul(1032))];
    let mut src = Source::Gzip {
        input: &bytes,
        dec: Decompress::new_gzip(15),
    };
    let got = src.fill(path, &mut out)?;
    out.truncate(got);
    // Streams longer than ISIZE (multi-member, or over 4 GiB).
    let mut more = [0u8; 1 << 16];
    loop {
        let n = src.fill(path, &mut more)?;
        out.extend_from_slice(&more[..n]);
        if n < more.len() {
            return Ok(out);
        }
    }
}
