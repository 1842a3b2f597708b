//! `--set key=value` on any serde configuration, and the numeric checks configurations share.

use serde::Serialize;

use crate::error::{Result, RuntimeError};

/// `name` must be at least 1.
pub fn positive(name: &str, v: usize) -> Result<()> {
    if v == 0 { Err(RuntimeError::Config(format!("{name} must be at least 1"))) } else { Ok(()) }
}

/// `name` must be finite and in `[lo, hi]` (`(lo, hi]` when `lo_inclusive` is false).
pub fn real(name: &str, v: f64, lo: f64, hi: f64, lo_inclusive: bool) -> Result<()> {
    let above = if lo_inclusive { v >= lo } else { v > lo };
    if v.is_finite() && above && v <= hi {
        return Ok(());
    }
    let range = match (lo_inclusive, hi == f64::MAX) {
        (true, true) => format!("≥ {lo}"),
        (false, true) => format!("> {lo}"),
        (true, false) => format!("in [{lo}, {hi}]"),
        (false, false) => format!("in ({lo}, {hi}]"),
    };
    Err(RuntimeError::Config(format!("{name} = {v} must be a finite number {range}")))
}

/// Override one field of any serde configuration by its dotted path (`optim.lr`,
/// `model.img_size_3d`). The value is a TOML literal (`5e-4`, `true`, `[16, 64, 64]`); anything
/// that does not parse as one is taken as a string. Integers given for real fields are
/// converted. Unknown keys are an error naming the missing part.
pub fn set_field<T: Serialize + serde::de::DeserializeOwned>(cfg: &mut T, key: &str, value: &str) -> Result<()> {
    let mut root = toml::Value::try_from(&*cfg).map_err(|e| RuntimeError::Config(e.to_string()))?;
    let parsed = toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_string()));
    let mut slot = &mut root;
    let mut path = String::new();
    for part in key.split('.') {
        let Some(table) = slot.as_table_mut() else {
            return Err(RuntimeError::Config(format!("unknown key {key:?}: {path} is a value, not a section")));
        };
        if !table.contains_key(part) {
            let keys: Vec<&str> = table.keys().map(String::as_str).collect();
            let within = if path.is_empty() { "the configuration".to_string() } else { path.clone() };
            return Err(RuntimeError::Config(format!("unknown key {key:?} (no field {part:?}); the keys of {within} are {}", keys.join(", "))));
        }
        path = if path.is_empty() { part.to_string() } else { format!("{path}.{part}") };
        slot = table.get_mut(part).ok_or_else(|| RuntimeError::Config(format!("unknown key {key:?}")))?;
    }
    *slot = match (&*slot, parsed) {
        (toml::Value::Float(_), toml::Value::Integer(i)) => toml::Value::Float(i as f64),
        (toml::Value::String(_), v) if !v.is_str() => toml::Value::String(value.to_string()),
        (_, v) => v,
    };
    *cfg = root.try_into().map_err(|e: toml::de::Error| RuntimeError::Config(format!("{key}={value}: {e}")))?;
    Ok(())
}

/// Parse `KEY=VALUE` pairs (the `--set` flags) and apply them with [`set_field`].
pub fn apply_overrides<T: Serialize + serde::de::DeserializeOwned>(cfg: &mut T, pairs: &[String]) -> Result<()> {
    for kv in pairs {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| RuntimeError::Config(format!("--set {kv:?}: expected KEY=VALUE")))?;
        set_field(cfg, k.trim(), v.trim())?;
    }
    Ok(())
}

