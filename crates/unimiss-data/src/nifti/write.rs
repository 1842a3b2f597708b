//! NIfTI-1 single-file writer (little endian), plain `.nii` or gzip `.nii.gz` by extension.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use flate2::Compression;
use flate2::write::GzEncoder;

use super::header::{Datatype, NIFTI1_HEADER_LEN, NiftiHeader};
use crate::error::{DataError, Result};

/// The voxel type to store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputType {
    /// Values are truncated toward zero (as numpy's `astype(np.int16)`) and saturated to the
    /// int16 range (numpy would wrap; CT values never reach it).
    Int16,
    Float32,
}

/// Writes `data` (file order, x fastest, `dims` = (nx, ny, nz)) with the geometry of `template`
/// (pixdim, qform, sform, units, description kept; scaling reset to none). The file is gzip
/// compressed when `path` ends in `.gz`.
pub fn write_nifti(
    path: &Path,
    template: &NiftiHeader,
    dims: [usize; 3],
    data: &[f32],
    ty: OutputType,
) -> Result<()> {
    let n: usize = dims.iter().product();
    if data.len() != n {
        return Err(DataError::Config(format!(
            "writing {}: {} values for dims {dims:?}",
            path.display(),
            data.len()
        )));
    }
    for (i, &d) in dims.iter().enumerate() {
        if d == 0 || d > i16::MAX as usize {
            return Err(DataError::Config(format!(
                "writing {}: dim {i} = {d} does not fit a NIfTI-1 header",
                path.display()
            )));
        }
    }
    let dt = match ty {
        OutputType::Int16 => Datatype::I16,
        OutputType::Float32 => Datatype::F32,
    };
    let mut bytes = header_bytes(template, dims, dt);
    bytes.reserve(n * dt.size());
    match ty {
        OutputType::Int16 => {
            for &v in data {
                let t = v.trunc().clamp(f32::from(i16::MIN), f32::from(i16::MAX)) as i16;
                bytes.extend_from_slice(&t.to_le_bytes());
            }
        }
        OutputType::Float32 => {
            for &v in data {
                bytes.extend_from_slice(&v.to_le_bytes());
            }
        }
    }
    let io = |e| DataError::io(path, e);
    let file = BufWriter::new(File::create(path).map_err(io)?);
    if path.extension().is_some_and(|e| e == "gz") {
        let mut gz = GzEncoder::new(file, Compression::new(6));
        gz.write_all(&bytes).map_err(io)?;
        gz.finish().map_err(io)?.flush().map_err(io)?;
    } else {
        let mut file = file;
        file.write_all(&bytes).map_err(io)?;
        file.flush().map_err(io)?;
    }
    Ok(())
}

/// A 352-byte NIfTI-1 header (348 + the 4-byte empty extension flag).
fn header_bytes(t: &NiftiHeader, dims: [usize; 3], dt: Datatype) -> Vec<u8> {
    let mut h = vec![0u8; NIFTI1_HEADER_LEN + 4];
    let mut put = |at: usize, b: &[u8]| h[at..at + b.len()].copy_from_slice(b);
    put(0, &(NIFTI1_HEADER_LEN as i32).to_le_bytes());
    put(38, b"r");
    let dim: [i16; 8] = [
        3,
        dims[0] as i16,
        dims[1] as i16,
        dims[2] as i16,
        1,
        1,
        1,
        1,
    ];
    for (i, d) in dim.iter().enumerate() {
        put(40 + 2 * i, &d.to_le_bytes());
    }
    put(70, &dt.code().to_le_bytes());
    put(72, &((dt.size() * 8) as i16).to_le_bytes());
    let mut pixdim = t.pixdim;
    pixdim[0] = if pixdim[0] < 0.0 { -1.0 } else { 1.0 };
    for (i, p) in pixdim.iter().enumerate() {
        put(76 + 4 * i, &(*p as f32).to_le_bytes());
    }
    put(108, &352f32.to_le_bytes());
    put(112, &1f32.to_le_bytes());
    put(116, &0f32.to_le_bytes());
    put(123, &[t.xyzt_units]);
    let desc = t.descrip.as_bytes();
    put(148, &desc[..desc.len().min(79)]);
    put(252, &(t.qform_code as i16).to_le_bytes());
    put(254, &(t.sform_code as i16).to_le_bytes());
    for (i, q) in t.quatern.iter().chain(&t.qoffset).enumerate() {
        put(256 + 4 * i, &(*q as f32).to_le_bytes());
    }
    for (r, row) in t.srow.iter().enumerate() {
        for (c, v) in row.iter().enumerate() {
            put(280 + 16 * r + 4 * c, &(*v as f32).to_le_bytes());
        }
    }
    put(344, b"n+1\0");
    h
}
