//! Event files: read back with a reader written here (TFRecord CRCs, protobuf decoding) and
//! compared with `data/tensorboardx_reference.tfevents`, written by tensorboardX 2.6.5
//! (`data/tensorboardx_reference.py`): the same events decode the same and, wall times aside,
//! are the same bytes.

use std::path::Path;

use unimiss_runtime::log::JsonlLog;
use unimiss_runtime::tensorboard::{EventWriter, event_files, masked_crc32c};

type Res = Result<(), Box<dyn std::error::Error>>;

/// The records of a TFRecord file, every length and data CRC checked.
fn records(path: &Path) -> Result<Vec<Vec<u8>>, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let (mut out, mut at) = (Vec::new(), 0usize);
    let u32_at = |i: usize| bytes.get(i..i + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    while at < bytes.len() {
        let len_bytes = bytes.get(at..at + 8).ok_or(format!("truncated length at {at}"))?;
        let len = u64::from_le_bytes(len_bytes.try_into().map_err(|_| "length")?) as usize;
        if u32_at(at + 8) != Some(masked_crc32c(len_bytes)) {
            return Err(format!("bad length CRC at byte {at}"));
        }
        let data = bytes.get(at + 12..at + 12 + len).ok_or(format!("truncated record at {at}"))?;
        if u32_at(at + 12 + len) != Some(masked_crc32c(data)) {
            return Err(format!("bad data CRC at byte {at}"));
        }
        out.push(data.to_vec());
        at += 16 + len;
    }
    Ok(out)
}

/// A decoded protobuf field value.
#[derive(Debug, Clone, PartialEq)]
enum V {
    Int(u64),
    F64(u64),
    F32(u32),
    Bytes(Vec<u8>),
}

/// `(field number, value)` in file order.
fn fields(mut b: &[u8]) -> Result<Vec<(u64, V)>, String> {
    fn varint(b: &mut &[u8]) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = b.split_first().ok_or("truncated varint")?;
            *b = rest;
            v |= u64::from(byte & 0x7F) << shift;
            if byte < 0x80 {
                return Ok(v);
            }
        }
        Err("varint too long".into())
    }
    let mut out = Vec::new();
    while !b.is_empty() {
        let key = varint(&mut b)?;
        let take = |b: &mut &[u8], n: usize| -> Result<Vec<u8>, String> {
            let v = b.get(..n).ok_or("truncated field")?.to_vec();
            *b = &b[n..];
            Ok(v)
        };
        let v = match key & 7 {
            0 => V::Int(varint(&mut b)?),
            1 => V::F64(u64::from_le_bytes(take(&mut b, 8)?.try_into().map_err(|_| "f64")?)),
            5 => V::F32(u32::from_le_bytes(take(&mut b, 4)?.try_into().map_err(|_| "f32")?)),
            2 => {
                let n = varint(&mut b)? as usize;
                V::Bytes(take(&mut b, n)?)
            }
            w => return Err(format!("wire type {w}")),
        };
        out.push((key >> 3, v));
    }
    Ok(out)
}

fn get<'a>(f: &'a [(u64, V)], n: u64) -> Option<&'a V> {
    f.iter().find(|(k, _)| *k == n).map(|(_, v)| v)
}

fn sub(f: &[(u64, V)], n: u64) -> Vec<(u64, V)> {
    match get(f, n) {
        Some(V::Bytes(b)) => fields(b).unwrap_or_else(|e| panic!("field {n}: {e}")),
        other => panic!("field {n}: expected a message, found {other:?}"),
    }
}

/// One event as readable text, wall time left out: what TensorBoard would show.
fn describe(event: &[u8]) -> String {
    let e = fields(event).unwrap_or_else(|e| panic!("event: {e}"));
    assert!(matches!(get(&e, 1), Some(V::F64(_))), "no wall_time in {e:?}");
    let step = match get(&e, 2) {
        Some(V::Int(s)) => *s,
        _ => 0,
    };
    if let Some(V::Bytes(v)) = get(&e, 3) {
        return format!("step {step} file_version {}", String::from_utf8_lossy(v));
    }
    let summary = sub(&e, 5);
    let value = sub(&summary, 1);
    let tag = match get(&value, 1) {
        Some(V::Bytes(t)) => String::from_utf8_lossy(t).into_owned(),
        other => panic!("tag: {other:?}"),
    };
    if let Some(V::F32(bits)) = get(&value, 2) {
        return format!("step {step} scalar {tag} = {}", f32::from_bits(*bits));
    }
    if get(&value, 4).is_some() {
        let img = sub(&value, 4);
        return format!("step {step} image {tag} h,w,colorspace {:?},{:?},{:?} png {:?}", get(&img, 1), get(&img, 2), get(&img, 3), get(&img, 4));
    }
    let tensor = sub(&value, 8);
    let plugin = sub(&sub(&value, 9), 1);
    format!("step {step} text {tag} plugin {:?} tensor {tensor:?}", get(&plugin, 1))
}

/// The event without its wall time (field 1, a fixed64 that is always written first).
fn without_wall_time(event: &[u8]) -> &[u8] {
    assert_eq!(event.first(), Some(&0x09), "wall_time is not the first field");
    &event[9..]
}

fn reference() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/data/tensorboardx_reference.tfevents")
}

#[test]
fn events_match_the_tensorboardx_reference() -> Res {
    let want = records(&reference())?;
    // The reference's image: its own PNG bytes and size, written again by us.
    let img = sub(&sub(&sub(&fields(&want[4])?, 5), 1), 4);
    let (Some(V::Bytes(png)), Some(V::Int(h)), Some(V::Int(w))) = (get(&img, 4), get(&img, 1), get(&img, 2)) else {
        return Err("reference image fields".into());
    };
    let tmp = tempfile::tempdir()?;
    let mut ev = EventWriter::create(tmp.path())?;
    ev.scalar("2d/loss", 1, 6.25)?;
    ev.scalar("2d/terms/dino", 2, 0.125)?;
    ev.scalar("train/lr", 40, 2e-3)?;
    ev.image_png("preview", 0, png, *w as u32, *h as u32)?;
    // tensorboardX's add_text appends "/text_summary" to the tag it is given.
    ev.text("config/text_summary", 0, "seed = 0\n[optim]\nepochs = 2")?;
    ev.flush()?;
    let name = ev.path().file_name().and_then(|n| n.to_str()).ok_or("file name")?.to_string();
    assert!(name.starts_with("events.out.tfevents.") && name.ends_with(&format!(".{}", std::process::id())), "{name}");
    let got = records(ev.path())?;
    assert_eq!(got.len(), want.len(), "record count");
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(describe(g), describe(w));
        assert_eq!(without_wall_time(g), without_wall_time(w), "bytes of {}", describe(w));
    }
    assert_eq!(describe(&got[0]), "step 0 file_version brain.Event:2");
    assert_eq!(describe(&got[2]), "step 2 scalar 2d/terms/dino = 0.125");
    Ok(())
}

#[derive(serde::Serialize)]
struct Rec {
    kind: &'static str,
    step: u64,
    epoch: usize,
    modality: &'static str,
    loss: f64,
    terms: std::collections::BTreeMap<&'static str, f64>,
    skipped: Vec<String>,
}

#[test]
fn log_records_become_scalars_named_by_modality_and_field() -> Res {
    let tmp = tempfile::tempdir()?;
    let mut ev = EventWriter::create(tmp.path())?;
    let terms = [("vv", 1.5), ("sv", 2.5)].into_iter().collect();
    ev.record(&Rec { kind: "step", step: 7, epoch: 1, modality: "3d", loss: 4.0, terms, skipped: vec![] })?;
    ev.record(&Rec { kind: "epoch", step: 9, epoch: 1, modality: "3d", loss: 3.0, terms: Default::default(), skipped: vec![] })?;
    ev.flush()?;
    let got: Vec<String> = records(ev.path())?.iter().skip(1).map(|r| describe(r)).collect();
    assert_eq!(
        got,
        [
            "step 7 scalar 3d/loss = 4",
            "step 7 scalar 3d/terms/sv = 2.5",
            "step 7 scalar 3d/terms/vv = 1.5",
            "step 9 scalar 3d/epoch/loss = 3",
        ]
    );
    assert!(ev.record(&[1.0]).is_err(), "a record without a step is refused");
    Ok(())
}

#[test]
fn the_reader_detects_a_corrupted_record() -> Res {
    let tmp = tempfile::tempdir()?;
    let p = tmp.path().join("bad");
    let mut bytes = std::fs::read(reference())?;
    let last = bytes.len() - 10;
    bytes[last] ^= 1;
    std::fs::write(&p, bytes)?;
    assert!(records(&p).is_err_and(|e| e.contains("CRC")));
    Ok(())
}

/// A resumed run's log and events are rolled back together: the events of the steps after the
/// checkpoint are gone, so TensorBoard draws each step once.
#[test]
fn a_resumed_log_rewrites_its_events_without_the_rolled_back_steps() -> Res {
    let tmp = tempfile::tempdir()?;
    let run = tmp.path();
    let mut log = JsonlLog::open(run)?;
    for step in 1..=4u64 {
        log.write(&serde_json::json!({"kind": "step", "step": step, "epoch": 0, "modality": "2d", "loss": step as f64}))?;
    }
    drop(log);
    std::thread::sleep(std::time::Duration::from_millis(1100)); // a new file name (seconds)
    let mut log = JsonlLog::open_resumed(run, 2, 0)?;
    log.write(&serde_json::json!({"kind": "step", "step": 3, "epoch": 0, "modality": "2d", "loss": 30.0}))?;
    drop(log);
    let files = event_files(run)?;
    assert_eq!(files.len(), 1, "{files:?}");
    let got: Vec<String> = records(&files[0])?.iter().skip(1).map(|r| describe(r)).collect();
    assert_eq!(got, ["step 1 scalar 2d/loss = 1", "step 2 scalar 2d/loss = 2", "step 3 scalar 2d/loss = 30"]);
    let text = std::fs::read_to_string(run.join("log.jsonl"))?;
    assert_eq!(text.lines().count(), 3, "{text}");
    Ok(())
}
