//! The parameter names and shapes a configuration expects, found by building the model on a
//! backend that records every request and allocates nothing.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use candle::{DType, Device, Result, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};

use crate::config::{HeadConfig, MitConfig};
use crate::head::Head;
use crate::mit::Mit;

/// Records `(name, shape)` of each request and returns a broadcast zero (no allocation).
struct Recorder(Arc<Mutex<BTreeMap<String, Vec<usize>>>>);

impl SimpleBackend for Recorder {
    fn get(&self, s: Shape, name: &str, _: Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        if let Ok(mut m) = self.0.lock() {
            m.insert(name.to_string(), s.dims().to_vec());
        }
        Tensor::zeros((), dtype, dev)?.broadcast_as(s)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> Result<Tensor> {
        candle::bail!("shape recorder: unchecked access to {name}")
    }

    fn contains_tensor(&self, _: &str) -> bool {
        false
    }
}

/// Every parameter name (official state_dict keys, `backbone.*` and, with a head, `head.*`)
/// and its shape.
pub fn expected_shapes(m: &MitConfig, h: Option<&HeadConfig>) -> Result<BTreeMap<String, Vec<usize>>> {
    let table = Arc::new(Mutex::new(BTreeMap::new()));
    let vb = VarBuilder::from_backend(Box::new(Recorder(table.clone())), DType::F32, Device::Cpu);
    Mit::new(m, vb.pp("backbone"))?;
    if let Some(h) = h {
        Head::new(h, vb.pp("head"))?;
    }
    let out = table.lock().map_err(|_| candle::Error::Msg("shape recorder poisoned".into()))?.clone();
    Ok(out)
}

/// Parameter counts of a key table, split as in reference §1.8.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ParamCount {
    pub total: usize,
    /// `backbone.transformer.*`.
    pub encoder: usize,
    /// Keys containing `2D`.
    pub planar_only: usize,
    /// Keys containing `3D`.
    pub volumetric_only: usize,
    /// `head.*`.
    pub head: usize,
}

impl ParamCount {
    pub fn of(shapes: &BTreeMap<String, Vec<usize>>) -> Self {
        let mut c = ParamCount::default();
        for (k, s) in shapes {
            let n: usize = s.iter().product();
            c.total += n;
            if k.starts_with("head.") {
                c.head += n;
                continue;
            }
            if k.starts_with("backbone.transformer.") {
                c.encoder += n;
            }
            match crate::Modality::of_param(k) {
                Some(crate::Modality::Image2d) => c.planar_only += n,
                Some(crate::Modality::Volume3d) => c.volumetric_only += n,
                None => {}
            }
        }
        c
    }

    /// Backbone parameters (everything but the head).
    pub fn backbone(&self) -> usize {
        self.total - self.head
    }

    /// Backbone parameters shared by both modalities.
    pub fn shared(&self) -> usize {
        self.backbone() - self.planar_only - self.volumetric_only
    }
}
