//! Bounded, streaming NIfTI reader: `.nii` or gzip (`.nii.gz`, detected by its magic bytes).

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;

use super::NiftiImage;
use super::header::{Datatype, NiftiHeader, header_len};
use crate::error::{DataError, Result};

/// Default limit on the voxel count of one file: 2^30 voxels (4 GiB as f32), far above any CT.
pub const DEFAULT_MAX_VOXELS: u64 = 1 << 30;

/// Largest header extension (bytes between the header and the voxel data) the reader accepts.
const MAX_EXTENSION_BYTES: u64 = 64 << 20;

/// Reads a NIfTI file (NIfTI-1 or -2, either byte order, plain or gzip) in the file's own
/// (x, y, z) order with scaling applied, refusing files above `max_voxels`.
pub fn read_nifti_image_limited(path: &Path, max_voxels: u64) -> Result<NiftiImage> {
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let file_len = file.metadata().map_err(|e| DataError::io(path, e))?.len();
    let mut raw = BufReader::with_capacity(1 << 16, file);
    let mut magic = [0u8; 2];
    let n = read_full(path, &mut raw, &mut magic)?;
    let head = std::io::Cursor::new(magic[..n].to_vec());
    if n == 2 && magic == [0x1f, 0x8b] {
        let gz = MultiGzDecoder::new(head.chain(raw));
        decode_stream(path, gz, None, max_voxels)
    } else {
        decode_stream(path, head.chain(raw), Some(file_len), max_voxels)
    }
}

/// Parses a whole NIfTI file held in memory (plain or gzip); `name` is used in errors.
/// This is the fuzzing entry point.
pub fn read_nifti_bytes(name: &Path, bytes: &[u8], max_voxels: u64) -> Result<NiftiImage> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        decode_stream(name, MultiGzDecoder::new(bytes), None, max_voxels)
    } else {
        decode_stream(name, bytes, Some(bytes.len() as u64), max_voxels)
    }
}

/// Reads until `buf` is full or the stream ends; returns the count read.
fn read_full(path: &Path, r: &mut impl Read, buf: &mut [u8]) -> Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(stream_error(path, e)),
        }
    }
    Ok(got)
}

fn stream_error(path: &Path, e: std::io::Error) -> DataError {
    match e.kind() {
        std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData => DataError::Corrupt {
            path: path.to_path_buf(),
            reason: e.to_string(),
        },
        std::io::ErrorKind::UnexpectedEof => DataError::Corrupt {
            path: path.to_path_buf(),
            reason: format!("compressed stream ends early ({e})"),
        },
        _ => DataError::io(path, e),
    }
}

fn decode_stream(
    path: &Path,
    mut r: impl Read,
    known_len: Option<u64>,
    max_voxels: u64,
) -> Result<NiftiImage> {
    let mut hdr = vec![0u8; super::header::NIFTI2_HEADER_LEN];
    let got = read_full(path, &mut r, &mut hdr[..4])?;
    if got < 4 {
        return Err(DataError::BadHeader {
            path: path.to_path_buf(),
            reason: format!("file has only {got} bytes"),
        });
    }
    let len = header_len(path, [hdr[0], hdr[1], hdr[2], hdr[3]])?;
    let got = 4 + read_full(path, &mut r, &mut hdr[4..len])?;
    let header = NiftiHeader::parse(path, &hdr[..got])?;
    let voxels = header.voxel_count();
    let bytes = header.data_bytes();
    if voxels > u128::from(max_voxels) {
        return Err(DataError::TooLarge {
            path: path.to_path_buf(),
            voxels,
            bytes,
            limit: max_voxels,
        });
    }
    let bytes = bytes as u64; // <= 2^30 * 8 after the check above (for sane limits)
    let ext = header.vox_offset - len as u64;
    if ext > MAX_EXTENSION_BYTES {
        return Err(DataError::BadHeader {
            path: path.to_path_buf(),
            reason: format!(
                "vox_offset {} leaves {ext} bytes of extensions",
                header.vox_offset
            ),
        });
    }
    if let Some(total) = known_len {
        let need = header.vox_offset + bytes;
        if total < need {
            return Err(DataError::Truncated {
                path: path.to_path_buf(),
                expected: bytes,
                found: total.saturating_sub(header.vox_offset),
            });
        }
    }
    let skipped = std::io::copy(&mut (&mut r).take(ext), &mut std::io::sink())
        .map_err(|e| stream_error(path, e))?;
    if skipped < ext {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            expected: bytes,
            found: 0,
        });
    }
    // Grow with the data actually present: a lying header cannot make us allocate up front.
    let mut raw = Vec::with_capacity(bytes.min(256 << 20) as usize);
    (&mut r)
        .take(bytes)
        .read_to_end(&mut raw)
        .map_err(|e| stream_error(path, e))?;
    if (raw.len() as u64) < bytes {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            expected: bytes,
            found: raw.len() as u64,
        });
    }
    let data = decode_voxels(path, &header, &raw)?;
    Ok(NiftiImage { header, data })
}

macro_rules! conv {
    ($raw:expr, $ty:ty, $be:expr, $f:expr) => {{
        const N: usize = std::mem::size_of::<$ty>();
        $raw.chunks_exact(N)
            .map(|c| {
                let mut a = [0u8; N];
                a.copy_from_slice(c);
                let v = if $be {
                    <$ty>::from_be_bytes(a)
                } else {
                    <$ty>::from_le_bytes(a)
                };
                $f(v)
            })
            .collect::<Vec<f32>>()
    }};
}

/// Converts raw voxel bytes to f32 with the header's scaling; refuses NaN/inf voxels.
fn decode_voxels(path: &Path, h: &NiftiHeader, raw: &[u8]) -> Result<Vec<f32>> {
    let be = h.big_endian;
    let mut out = match h.datatype {
        Datatype::U8 => raw.iter().map(|&v| f32::from(v)).collect(),
        Datatype::I8 => raw.iter().map(|&v| f32::from(v as i8)).collect(),
        Datatype::I16 => conv!(raw, i16, be, f32::from),
        Datatype::U16 => conv!(raw, u16, be, f32::from),
        Datatype::I32 => conv!(raw, i32, be, |v: i32| v as f32),
        Datatype::U32 => conv!(raw, u32, be, |v: u32| v as f32),
        Datatype::I64 => conv!(raw, i64, be, |v: i64| v as f32),
        Datatype::U64 => conv!(raw, u64, be, |v: u64| v as f32),
        Datatype::F32 => conv!(raw, f32, be, |v: f32| v),
        Datatype::F64 => conv!(raw, f64, be, |v: f64| v as f32),
    };
    if let Some((s, i)) = h.scaling() {
        for v in out.iter_mut() {
            *v = (f64::from(*v) * s + i) as f32;
        }
    }
    if let Some(pos) = out.iter().position(|v| !v.is_finite()) {
        let [nx, ny, _] = h.dims;
        return Err(DataError::NonFinite {
            path: path.to_path_buf(),
            value: out[pos],
            index: [pos % nx, (pos / nx) % ny, pos / (nx * ny)],
        });
    }
    Ok(out)
}

/// The file's bytes, inflated when gzip (for measuring the deflate backend).
pub fn read_decompressed(path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return Ok(bytes);
    }
    let mut out = Vec::with_capacity(bytes.len() * 2);
    MultiGzDecoder::new(bytes.as_slice())
        .read_to_end(&mut out)
        .map_err(|e| stream_error(path, e))?;
    Ok(out)
}
