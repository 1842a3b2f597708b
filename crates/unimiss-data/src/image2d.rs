//! PNG/JPEG reading (8- or 16-bit, grey or RGB, alpha dropped) into planar f32 in [0, 1].

use std::path::Path;

use image::DynamicImage;

use crate::error::{DataError, Result};

/// Largest image the reader decodes (pixels, 8192² — X-rays are at most ~4k²), refused before
/// decoding: a few hundred bytes of JPEG header can declare gigapixels (found by fuzzing: a
/// 648-byte file made the decoder and the f32 conversion take over 2 GB).
pub const MAX_PIXELS: u64 = 1 << 26;

/// A 2D image, planar (C, H, W) f32 in [0, 1]. `channels` is 1 for grey images, including RGB
/// files whose three channels are identical (X-rays saved as RGB), which lets the augmentation
/// work on one plane; [`Image2d::rgb_plane`] gives the planes back as three.
#[derive(Clone, Debug, PartialEq)]
pub struct Image2d {
    pub width: usize,
    pub height: usize,
    /// 1 (grey) or 3 (RGB).
    pub channels: usize,
    pub data: Vec<f32>,
}

impl Image2d {
    /// Plane `c` of the RGB view (a grey image's single plane for every c).
    pub fn rgb_plane(&self, c: usize) -> &[f32] {
        let n = self.width * self.height;
        let c = if self.channels == 1 { 0 } else { c };
        &self.data[c * n..(c + 1) * n]
    }
}

/// Reads a PNG or JPEG. 8-bit values map to v/255 and 16-bit to v/65535 (full precision; the
/// official `cv2.imread` would first cut 16-bit images to 8 bits).
pub fn read_image(path: impl AsRef<Path>) -> Result<Image2d> {
    let path = path.as_ref();
    let reader = image::ImageReader::open(path)
        .map_err(|e| DataError::io(path, e))?
        .with_guessed_format()
        .map_err(|e| DataError::io(path, e))?;
    decode(path, reader)
}

/// Decodes an encoded PNG/JPEG held in memory; `name` is used in errors.
pub fn read_image_bytes(name: &Path, bytes: &[u8]) -> Result<Image2d> {
    let reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| DataError::io(name, e))?;
    decode(name, reader)
}

fn decode<R: std::io::BufRead + std::io::Seek>(
    path: &Path,
    reader: image::ImageReader<R>,
) -> Result<Image2d> {
    let err = |reason: String| DataError::Image {
        path: path.to_path_buf(),
        reason,
    };
    if reader.format().is_none() {
        return Err(err("not a PNG or JPEG file".into()));
    }
    let mut limits = image::Limits::default();
    let side = 1u32 << 13;
    limits.max_image_width = Some(side);
    limits.max_image_height = Some(side);
    limits.max_alloc = Some(MAX_PIXELS * 8);
    let mut reader = reader;
    reader.limits(limits);
    let img = reader.decode().map_err(|e| match e {
        image::ImageError::IoError(io)
            if matches!(
                io.kind(),
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::InvalidData
            ) =>
        {
            err(format!("truncated or corrupt image ({io})"))
        }
        image::ImageError::IoError(io) => DataError::io(path, io),
        other => err(other.to_string()),
    })?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    if w == 0 || h == 0 {
        return Err(err(format!("empty image {w}x{h}")));
    }
    let (channels, data): (usize, Vec<f32>) = match img {
        DynamicImage::ImageLuma8(b) => (1, u8_plane(&b.into_raw(), 1)),
        DynamicImage::ImageLumaA8(_) => (1, u8_plane(&img.into_luma8().into_raw(), 1)),
        DynamicImage::ImageLuma16(b) => (1, u16_plane(&b.into_raw(), 1)),
        DynamicImage::ImageLumaA16(_) => (1, u16_plane(&img.into_luma16().into_raw(), 1)),
        DynamicImage::ImageRgb16(_) | DynamicImage::ImageRgba16(_) => {
            (3, u16_plane(&img.into_rgb16().into_raw(), 3))
        }
        DynamicImage::ImageRgb8(_) | DynamicImage::ImageRgba8(_) => {
            (3, u8_plane(&img.into_rgb8().into_raw(), 3))
        }
        other => return Err(err(format!("unsupported pixel layout {:?}", other.color()))),
    };
    let mut out = Image2d {
        width: w,
        height: h,
        channels,
        data,
    };
    if out.channels == 3 {
        let n = w * h;
        let (r, rest) = out.data.split_at(n);
        let (g, b) = rest.split_at(n);
        if r == g && g == b {
            out.data.truncate(n);
            out.channels = 1;
        }
    }
    Ok(out)
}

/// Interleaved samples to planar f32, divided by `max`.
fn planar<T: Copy + Into<f32>>(raw: &[T], c: usize, max: f32) -> Vec<f32> {
    let n = raw.len() / c;
    let mut out = vec![0.0f32; raw.len()];
    for (i, px) in raw.chunks_exact(c).enumerate() {
        for (k, &v) in px.iter().enumerate() {
            out[k * n + i] = v.into() / max;
        }
    }
    out
}

fn u8_plane(raw: &[u8], c: usize) -> Vec<f32> {
    planar(raw, c, 255.0)
}

fn u16_plane(raw: &[u16], c: usize) -> Vec<f32> {
    planar(raw, c, 65535.0)
}
