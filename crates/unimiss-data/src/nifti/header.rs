//! NIfTI-1 and NIfTI-2 header parsing (either byte order) and the voxel-to-world affine.

use std::path::Path;

use crate::error::{DataError, Result};

/// Size of a NIfTI-1 header in bytes.
pub const NIFTI1_HEADER_LEN: usize = 348;
/// Size of a NIfTI-2 header in bytes.
pub const NIFTI2_HEADER_LEN: usize = 540;

/// Which NIfTI version the header was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NiftiVersion {
    One,
    Two,
}

/// The real scalar voxel types read by this crate (NIfTI datatype codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Datatype {
    U8,
    I8,
    I16,
    U16,
    I32,
    U32,
    I64,
    U64,
    F32,
    F64,
}

impl Datatype {
    /// The datatype for a NIfTI code, if it is a supported real scalar type.
    pub fn from_code(code: i32) -> Option<Self> {
        Some(match code {
            2 => Datatype::U8,
            4 => Datatype::I16,
            8 => Datatype::I32,
            16 => Datatype::F32,
            64 => Datatype::F64,
            256 => Datatype::I8,
            512 => Datatype::U16,
            768 => Datatype::U32,
            1024 => Datatype::I64,
            1280 => Datatype::U64,
            _ => return None,
        })
    }

    /// The NIfTI code.
    pub fn code(self) -> i16 {
        match self {
            Datatype::U8 => 2,
            Datatype::I16 => 4,
            Datatype::I32 => 8,
            Datatype::F32 => 16,
            Datatype::F64 => 64,
            Datatype::I8 => 256,
            Datatype::U16 => 512,
            Datatype::U32 => 768,
            Datatype::I64 => 1024,
            Datatype::U64 => 1280,
        }
    }

    /// Bytes per voxel.
    pub fn size(self) -> usize {
        match self {
            Datatype::U8 | Datatype::I8 => 1,
            Datatype::I16 | Datatype::U16 => 2,
            Datatype::I32 | Datatype::U32 | Datatype::F32 => 4,
            Datatype::I64 | Datatype::U64 | Datatype::F64 => 8,
        }
    }
}

/// The fields of a NIfTI header that matter for reading, writing and geometry.
#[derive(Clone, Debug, PartialEq)]
pub struct NiftiHeader {
    pub version: NiftiVersion,
    pub big_endian: bool,
    /// Voxel counts along the file's (x, y, z) axes; x varies fastest on disk.
    pub dims: [usize; 3],
    pub datatype: Datatype,
    /// pixdim[0] is qfac; pixdim[1..4] are the (x, y, z) voxel sizes.
    pub pixdim: [f64; 8],
    pub vox_offset: u64,
    /// Raw scaling fields; use [`NiftiHeader::scaling`] for their meaning.
    pub scl_slope: f64,
    pub scl_inter: f64,
    pub qform_code: i32,
    pub sform_code: i32,
    pub quatern: [f64; 3],
    pub qoffset: [f64; 3],
    pub srow: [[f64; 4]; 3],
    pub xyzt_units: u8,
    pub descrip: String,
}

struct Bytes<'a> {
    b: &'a [u8],
    be: bool,
}

impl Bytes<'_> {
    fn arr<const N: usize>(&self, at: usize) -> [u8; N] {
        let mut a = [0u8; N];
        a.copy_from_slice(&self.b[at..at + N]);
        if self.be {
            a.reverse();
        }
        a
    }
    fn i16(&self, at: usize) -> i16 {
        i16::from_le_bytes(self.arr(at))
    }
    fn i32(&self, at: usize) -> i32 {
        i32::from_le_bytes(self.arr(at))
    }
    fn i64(&self, at: usize) -> i64 {
        i64::from_le_bytes(self.arr(at))
    }
    fn f32(&self, at: usize) -> f64 {
        f64::from(f32::from_le_bytes(self.arr(at)))
    }
    fn f64(&self, at: usize) -> f64 {
        f64::from_le_bytes(self.arr(at))
    }
    fn text(&self, at: usize, len: usize) -> String {
        let s = &self.b[at..at + len];
        let end = s.iter().position(|&c| c == 0).unwrap_or(len);
        String::from_utf8_lossy(&s[..end]).into_owned()
    }
}

/// How many header bytes the reader must have: 348 for NIfTI-1, 540 for NIfTI-2.
/// `first4` are the first four bytes of the file (sizeof_hdr in either byte order).
pub fn header_len(path: &Path, first4: [u8; 4]) -> Result<usize> {
    let le = i32::from_le_bytes(first4);
    let be = i32::from_be_bytes(first4);
    match (le, be) {
        (348, _) | (_, 348) => Ok(NIFTI1_HEADER_LEN),
        (540, _) | (_, 540) => Ok(NIFTI2_HEADER_LEN),
        _ => Err(DataError::BadHeader {
            path: path.to_path_buf(),
            reason: format!("sizeof_hdr is {le} (not 348 or 540): not a NIfTI file"),
        }),
    }
}

fn bad(path: &Path, reason: impl Into<String>) -> DataError {
    DataError::BadHeader {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

impl NiftiHeader {
    /// Parses a header from its first 348 (NIfTI-1) or 540 (NIfTI-2) bytes.
    pub fn parse(path: &Path, b: &[u8]) -> Result<Self> {
        if b.len() < 4 {
            return Err(bad(path, "file shorter than 4 bytes"));
        }
        let len = header_len(path, [b[0], b[1], b[2], b[3]])?;
        if b.len() < len {
            return Err(DataError::Truncated {
                path: path.to_path_buf(),
                expected: len as u64,
                found: b.len() as u64,
            });
        }
        let be = i32::from_le_bytes([b[0], b[1], b[2], b[3]]) != len as i32;
        let r = Bytes { b, be };
        let h = if len == NIFTI1_HEADER_LEN {
            Self::parse1(path, &r)?
        } else {
            Self::parse2(path, &r)?
        };
        h.validate(path)?;
        Ok(h)
    }

    fn parse1(path: &Path, r: &Bytes) -> Result<Self> {
        let magic = &r.b[344..348];
        if magic != b"n+1\0" && magic != b"ni1\0" {
            return Err(bad(
                path,
                format!("NIfTI-1 magic is {magic:?}, not \"n+1\""),
            ));
        }
        if magic == b"ni1\0" {
            return Err(bad(path, "two-file NIfTI (.hdr/.img) is not supported"));
        }
        let dim: Vec<i64> = (0..8).map(|i| i64::from(r.i16(40 + 2 * i))).collect();
        let code = i32::from(r.i16(70));
        let mut pixdim = [0.0; 8];
        for (i, p) in pixdim.iter_mut().enumerate() {
            *p = r.f32(76 + 4 * i);
        }
        let vox = r.f32(108);
        if !(vox.is_finite() && vox >= 0.0) {
            return Err(bad(path, format!("vox_offset {vox} is not a valid offset")));
        }
        let mut srow = [[0.0; 4]; 3];
        for (row, s) in srow.iter_mut().enumerate() {
            for (col, v) in s.iter_mut().enumerate() {
                *v = r.f32(280 + 16 * row + 4 * col);
            }
        }
        Ok(NiftiHeader {
            version: NiftiVersion::One,
            big_endian: r.be,
            dims: spatial_dims(path, &dim)?,
            datatype: datatype(path, code)?,
            pixdim,
            vox_offset: vox as u64,
            scl_slope: r.f32(112),
            scl_inter: r.f32(116),
            qform_code: i32::from(r.i16(252)),
            sform_code: i32::from(r.i16(254)),
            quatern: [r.f32(256), r.f32(260), r.f32(264)],
            qoffset: [r.f32(268), r.f32(272), r.f32(276)],
            srow,
            xyzt_units: r.b[123],
            descrip: r.text(148, 80),
        })
    }

    fn parse2(path: &Path, r: &Bytes) -> Result<Self> {
        let magic = &r.b[4..8];
        if magic != b"n+2\0" {
            return Err(bad(
                path,
                format!("NIfTI-2 magic is {magic:?}, not \"n+2\""),
            ));
        }
        let dim: Vec<i64> = (0..8).map(|i| r.i64(16 + 8 * i)).collect();
        let code = i32::from(r.i16(12));
        let mut pixdim = [0.0; 8];
        for (i, p) in pixdim.iter_mut().enumerate() {
            *p = r.f64(104 + 8 * i);
        }
        let vox = r.i64(168);
        let vox_offset =
            u64::try_from(vox).map_err(|_| bad(path, format!("negative vox_offset {vox}")))?;
        let mut srow = [[0.0; 4]; 3];
        for (row, s) in srow.iter_mut().enumerate() {
            for (col, v) in s.iter_mut().enumerate() {
                *v = r.f64(400 + 32 * row + 8 * col);
            }
        }
        Ok(NiftiHeader {
            version: NiftiVersion::Two,
            big_endian: r.be,
            dims: spatial_dims(path, &dim)?,
            datatype: datatype(path, code)?,
            pixdim,
            vox_offset,
            scl_slope: r.f64(176),
            scl_inter: r.f64(184),
            qform_code: r.i32(344),
            sform_code: r.i32(348),
            quatern: [r.f64(352), r.f64(360), r.f64(368)],
            qoffset: [r.f64(376), r.f64(384), r.f64(392)],
            srow,
            xyzt_units: r.i32(500) as u8,
            descrip: r.text(240, 80),
        })
    }

    fn validate(&self, path: &Path) -> Result<()> {
        let min_off = match self.version {
            NiftiVersion::One => NIFTI1_HEADER_LEN as u64,
            NiftiVersion::Two => NIFTI2_HEADER_LEN as u64,
        };
        if self.vox_offset < min_off {
            return Err(bad(
                path,
                format!("vox_offset {} lies inside the header", self.vox_offset),
            ));
        }
        for (axis, &p) in ["x", "y", "z"].iter().zip(&self.pixdim[1..4]) {
            if !p.is_finite() {
                return Err(bad(path, format!("pixdim along {axis} is {p}")));
            }
        }
        Ok(())
    }

    /// Number of voxels (saturating: three NIfTI-2 dimensions of 2^63 overflow even u128).
    pub fn voxel_count(&self) -> u128 {
        self.dims.iter().fold(1u128, |n, &d| n.saturating_mul(d as u128))
    }

    /// Number of bytes of voxel data (saturating).
    pub fn data_bytes(&self) -> u128 {
        self.voxel_count().saturating_mul(self.datatype.size() as u128)
    }

    /// `(slope, intercept)` to apply, or `None` when the header asks for no scaling
    /// (slope 0 or NaN, or the identity).
    pub fn scaling(&self) -> Option<(f64, f64)> {
        let (s, i) = (self.scl_slope, self.scl_inter);
        if s == 0.0 || !s.is_finite() {
            return None;
        }
        let i = if i.is_finite() { i } else { 0.0 };
        if s == 1.0 && i == 0.0 {
            None
        } else {
            Some((s, i))
        }
    }

    /// Voxel sizes along (x, y, z), as absolute values (0 is read as 1).
    pub fn spacing_xyz(&self) -> [f64; 3] {
        let f = |p: f64| if p == 0.0 { 1.0 } else { p.abs() };
        [f(self.pixdim[1]), f(self.pixdim[2]), f(self.pixdim[3])]
    }

    /// The voxel (i, j, k) → world (mm) affine, rows of a 3×4 matrix: the sform when
    /// sform_code > 0, else the qform when qform_code > 0, else the pixdim diagonal (the
    /// NIfTI standard's order, as nibabel's `affine`).
    pub fn affine(&self) -> [[f64; 4]; 3] {
        if self.sform_code > 0 {
            return self.srow;
        }
        self.affine_from_qform()
    }

    /// The qform affine (or the pixdim diagonal when qform_code is 0), ignoring the sform.
    pub fn affine_from_qform(&self) -> [[f64; 4]; 3] {
        let [dx, dy, dz] = self.spacing_xyz();
        if self.qform_code <= 0 {
            return [
                [dx, 0.0, 0.0, 0.0],
                [0.0, dy, 0.0, 0.0],
                [0.0, 0.0, dz, 0.0],
            ];
        }
        let [b, c, d] = self.quatern;
        let a = (1.0 - (b * b + c * c + d * d)).max(0.0).sqrt();
        let qfac = if self.pixdim[0] < 0.0 { -1.0 } else { 1.0 };
        let r = [
            [
                a * a + b * b - c * c - d * d,
                2.0 * (b * c - a * d),
                2.0 * (b * d + a * c),
            ],
            [
                2.0 * (b * c + a * d),
                a * a + c * c - b * b - d * d,
                2.0 * (c * d - a * b),
            ],
            [
                2.0 * (b * d - a * c),
                2.0 * (c * d + a * b),
                a * a + d * d - c * c - b * b,
            ],
        ];
        let s = [dx, dy, dz * qfac];
        let mut m = [[0.0; 4]; 3];
        for row in 0..3 {
            for col in 0..3 {
                m[row][col] = r[row][col] * s[col];
            }
            m[row][3] = self.qoffset[row];
        }
        m
    }
}

fn datatype(path: &Path, code: i32) -> Result<Datatype> {
    Datatype::from_code(code).ok_or(DataError::UnsupportedDatatype {
        path: path.to_path_buf(),
        code,
    })
}

/// The three spatial sizes from a dim[8] array; refuses non-3D data.
fn spatial_dims(path: &Path, dim: &[i64]) -> Result<[usize; 3]> {
    let nd = dim[0];
    if !(1..=7).contains(&nd) {
        return Err(bad(path, format!("dim[0] = {nd} is outside 1..=7")));
    }
    let nd = nd as usize;
    if nd < 2 {
        return Err(DataError::WrongDimensionality {
            path: path.to_path_buf(),
            reason: format!("{nd}-D data, a volume needs 2 or 3 spatial axes"),
        });
    }
    let mut out = [1usize; 3];
    for i in 1..=nd {
        let n = dim[i];
        if n < 1 {
            return Err(bad(path, format!("dim[{i}] = {n} (must be at least 1)")));
        }
        if i <= 3 {
            out[i - 1] = usize::try_from(n).map_err(|_| bad(path, format!("dim[{i}] = {n}")))?;
        } else if n != 1 {
            return Err(DataError::WrongDimensionality {
                path: path.to_path_buf(),
                reason: format!("{nd}-D data with dim[{i}] = {n}; only one 3-D volume is read"),
            });
        }
    }
    Ok(out)
}
