//! TensorBoard event files in a run directory, so `tensorboard --logdir runs/` shows a run's
//! scalars, images and text as it does for PyTorch and MONAI runs.
//!
//! The format is small, so it is written here rather than through a crate: a file
//! `events.out.tfevents.<unix secs>.<host>.<pid>` is a TFRecord stream (per record: u64 length,
//! masked CRC-32C of the length, the bytes, masked CRC-32C of the bytes) of `Event` protocol
//! buffers (`tensorflow/core/util/event.proto`): the first says `file_version: "brain.Event:2"`,
//! each later one holds a `Summary` of one value: `simple_value` (scalars), `image` (an encoded
//! PNG) or a string `tensor` with the `text` plugin's metadata (text, as TensorBoard's own
//! writer and tensorboardX write it). A resumed run adds a new file; TensorBoard reads them all.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Result, RuntimeError, io_err};

/// Writes one event file in a run directory.
pub struct EventWriter {
    path: PathBuf,
    file: std::io::BufWriter<std::fs::File>,
}

/// The TensorBoard event files of a run directory (`events.out.tfevents.*`), sorted.
pub fn event_files(run_dir: &Path) -> Result<Vec<PathBuf>> {
    let Ok(rd) = std::fs::read_dir(run_dir) else { return Ok(vec![]) };
    let mut out = Vec::new();
    for e in rd {
        let p = e.map_err(io_err(run_dir))?.path();
        if p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("events.out.tfevents.")) {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

impl EventWriter {
    /// Create `RUN_DIR/events.out.tfevents.<unix secs>.<host>.<pid>` and write the version record.
    pub fn create(run_dir: &Path) -> Result<Self> {
        let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let name = format!("events.out.tfevents.{secs}.{}.{}", host(), std::process::id());
        let path = run_dir.join(name);
        let file = std::fs::File::create(&path).map_err(io_err(&path))?;
        let mut w = Self { path, file: std::io::BufWriter::new(file) };
        let mut event = event_header(0);
        event.bytes(3, b"brain.Event:2");
        w.write_record(&event.0)?;
        w.flush()?;
        Ok(w)
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A scalar (stored as f32, as TensorBoard's `simple_value` is).
    pub fn scalar(&mut self, tag: &str, step: u64, value: f64) -> Result<()> {
        let mut v = Pb::default();
        v.bytes(1, tag.as_bytes());
        v.fixed32(2, (value as f32).to_bits());
        self.summary(step, &v)
    }

    /// An image from its PNG bytes; the colour space (grey, grey+alpha, RGB, RGBA) is read from
    /// the PNG header.
    pub fn image_png(&mut self, tag: &str, step: u64, png: &[u8], width: u32, height: u32) -> Result<()> {
        let colorspace = match png.get(25) {
            Some(0) => 1,
            Some(4) => 2,
            Some(6) => 4,
            Some(2 | 3) => 3,
            _ => {
                return Err(RuntimeError::Config(format!("{}: image {tag:?} is not a PNG", self.path.display())));
            }
        };
        let mut img = Pb::default();
        img.varint(1, u64::from(height));
        img.varint(2, u64::from(width));
        img.varint(3, colorspace);
        img.bytes(4, png);
        let mut v = Pb::default();
        v.bytes(1, tag.as_bytes());
        v.bytes(4, &img.0);
        self.summary(step, &v)
    }

    /// Text (markdown) shown in the Text tab (a one-element string tensor with the `text`
    /// plugin's metadata; fields in number order, as protobuf writers emit them).
    pub fn text(&mut self, tag: &str, step: u64, text: &str) -> Result<()> {
        let mut plugin = Pb::default();
        plugin.bytes(1, b"text");
        let mut meta = Pb::default();
        meta.bytes(1, &plugin.0);
        let mut dim = Pb::default();
        dim.varint(1, 1);
        let mut shape = Pb::default();
        shape.bytes(2, &dim.0);
        let mut tensor = Pb::default();
        tensor.varint(1, 7); // DT_STRING
        tensor.bytes(2, &shape.0);
        tensor.bytes(8, text.as_bytes());
        let mut v = Pb::default();
        v.bytes(1, tag.as_bytes());
        v.bytes(8, &tensor.0);
        v.bytes(9, &meta.0);
        self.summary(step, &v)
    }

    /// Every number of a log record as a scalar at the record's `step`, named
    /// `<modality or "train">/<field>` (epoch records: `<modality>/epoch/<field>`), nested maps
    /// as `<prefix>/<field>/<key>` (e.g. `2d/terms/dino`). Counters (`step`, `epoch`, `batch`)
    /// and text are left out.
    pub fn record<T: Serialize>(&mut self, rec: &T) -> Result<()> {
        let value = serde_json::to_value(rec).map_err(|e| RuntimeError::Config(format!("tensorboard record: {e}")))?;
        let Some(obj) = value.as_object() else {
            return Err(RuntimeError::Config("tensorboard record: not a struct".into()));
        };
        let step = obj
            .get("step")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| RuntimeError::Config("tensorboard record: no `step` field".into()))?;
        let mut prefix = obj.get("modality").and_then(|m| m.as_str()).unwrap_or("train").to_string();
        if obj.get("kind").and_then(|k| k.as_str()) == Some("epoch") {
            prefix.push_str("/epoch");
        }
        let mut scalars = Vec::new();
        flatten(&prefix, &value, &mut scalars);
        for (tag, v) in scalars {
            self.scalar(&tag, step, v)?;
        }
        Ok(())
    }

    /// Push what was written to the file (TensorBoard reads it while the run goes on).
    pub fn flush(&mut self) -> Result<()> {
        self.file.flush().map_err(io_err(&self.path))
    }

    fn summary(&mut self, step: u64, value: &Pb) -> Result<()> {
        let mut summary = Pb::default();
        summary.bytes(1, &value.0);
        let mut event = event_header(step);
        event.bytes(5, &summary.0);
        self.write_record(&event.0)
    }

    fn write_record(&mut self, data: &[u8]) -> Result<()> {
        let len = (data.len() as u64).to_le_bytes();
        let mut buf = Vec::with_capacity(data.len() + 16);
        buf.extend_from_slice(&len);
        buf.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
        buf.extend_from_slice(data);
        buf.extend_from_slice(&masked_crc32c(data).to_le_bytes());
        self.file.write_all(&buf).map_err(io_err(&self.path))
    }
}

/// `(tag, value)` for every number under `v`, skipping counters and text.
fn flatten(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, f64)>) {
    let Some(obj) = v.as_object() else { return };
    for (k, field) in obj {
        let tag = format!("{prefix}/{k}");
        match field {
            serde_json::Value::Number(n) if !matches!(k.as_str(), "step" | "epoch" | "batch") => {
                if let Some(x) = n.as_f64() {
                    out.push((tag, x));
                }
            }
            serde_json::Value::Object(_) => flatten(&tag, field, out),
            _ => {}
        }
    }
}

/// An `Event` with `wall_time` (now) and `step`.
fn event_header(step: u64) -> Pb {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
    let mut e = Pb::default();
    e.fixed64(1, now.to_bits());
    if step > 0 {
        e.varint(2, step);
    }
    e
}

/// The host name for the file name (TensorBoard's convention), `localhost` when unknown.
fn host() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_default();
    let name: String = name.trim().chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')).collect();
    if name.is_empty() { "localhost".into() } else { name }
}

/// A protocol-buffer message being encoded.
#[derive(Default)]
struct Pb(Vec<u8>);

impl Pb {
    fn key(&mut self, field: u32, wire: u8) {
        self.raw_varint((u64::from(field) << 3) | u64::from(wire));
    }

    fn raw_varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn varint(&mut self, field: u32, v: u64) {
        self.key(field, 0);
        self.raw_varint(v);
    }

    fn fixed64(&mut self, field: u32, bits: u64) {
        self.key(field, 1);
        self.0.extend_from_slice(&bits.to_le_bytes());
    }

    fn fixed32(&mut self, field: u32, bits: u32) {
        self.key(field, 5);
        self.0.extend_from_slice(&bits.to_le_bytes());
    }

    fn bytes(&mut self, field: u32, b: &[u8]) {
        self.key(field, 2);
        self.raw_varint(b.len() as u64);
        self.0.extend_from_slice(b);
    }
}

/// CRC-32C (Castagnoli), bytewise with a table.
pub fn crc32c(data: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, e) in t.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 == 1 { (c >> 1) ^ 0x82F6_3B78 } else { c >> 1 };
            }
            *e = c;
        }
        t
    });
    !data.iter().fold(!0u32, |c, &b| table[((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8))
}

/// TFRecord's masked CRC: rotate right by 15, add 0xa282ead8.
pub fn masked_crc32c(data: &[u8]) -> u32 {
    crc32c(data).rotate_right(15).wrapping_add(0xA282_EAD8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_check_values() {
        // RFC 3720 B.4 and the standard check value.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xFFu8; 32]), 0x62A8_AB43);
        assert_eq!(crc32c(b""), 0);
    }
}
