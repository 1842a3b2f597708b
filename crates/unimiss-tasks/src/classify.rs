//! Inference for the classification tasks: per-sample class probabilities, with the official 2D
//! test-time augmentation (resize to 256/224 of the input, ten-crop, each crop predicted with the
//! four flip variants, softmax averaged) when asked.

use std::path::Path;

use candle::{Device, Tensor};
use unimiss_model::Modality;

use crate::config::FinetuneConfig;
use unimiss_data::dataset::{load_image, load_volume};
use crate::error::Result;
use crate::nets::{ClsNet, Task};
use crate::sliding::flip;

/// The network input of one sample, `(C, …)` flattened, and its shape.
pub fn input_of(task: Task, path: &Path, cfg: &FinetuneConfig) -> Result<(Vec<f32>, Vec<usize>)> {
    Ok(match task.modality() {
        Modality::Image2d => (load_image(path, cfg.input_2d)?, vec![3, cfg.input_2d, cfg.input_2d]),
        Modality::Volume3d => {
            let s = cfg.input_3d;
            (load_volume(path, s)?.0, vec![1, s[0], s[1], s[2]])
        }
    })
}

fn softmax_rows(logits: &Tensor) -> Result<Vec<Vec<f64>>> {
    let p = candle_nn::ops::softmax(logits, 1)?.to_dtype(candle::DType::F64)?;
    Ok(p.to_vec2::<f64>()?)
}

/// Class probabilities of the samples at `paths`, `batch` at a time.
pub fn predict_probs(net: &ClsNet, task: Task, paths: &[&Path], cfg: &FinetuneConfig, tta: bool, dev: &Device) -> Result<Vec<Vec<f64>>> {
    let mut out = Vec::with_capacity(paths.len());
    if tta && task == Task::CLS2D {
        for p in paths {
            out.push(ten_crop_probs(net, p, cfg, dev)?);
        }
        return Ok(out);
    }
    for chunk in paths.chunks(cfg.batch_size.max(1)) {
        let mut xs = Vec::with_capacity(chunk.len());
        for p in chunk {
            let (x, shape) = input_of(task, p, cfg)?;
            xs.push(Tensor::from_vec(x, shape, dev)?);
        }
        let x = Tensor::stack(&xs, 0)?;
        out.extend(softmax_rows(&net.forward(&x)?)?);
    }
    Ok(out)
}

/// Official CXR test: Resize(256·s/224), TenCrop(s), × 4 flips, softmax averaged.
fn ten_crop_probs(net: &ClsNet, path: &Path, cfg: &FinetuneConfig, dev: &Device) -> Result<Vec<f64>> {
    let s = cfg.input_2d;
    let big = (s as f64 * 256.0 / 224.0).round() as usize;
    let img = load_image(path, big)?;
    let plane = big * big;
    let crop = |y0: usize, x0: usize| -> Vec<f32> {
        let mut v = Vec::with_capacity(3 * s * s);
        for c in 0..3 {
            for y in 0..s {
                let row = c * plane + (y0 + y) * big + x0;
                v.extend_from_slice(&img[row..row + s]);
            }
        }
        v
    };
    let m = big - s;
    let c0 = (big - s) / 2;
    let starts = [(0, 0), (0, m), (m, 0), (m, m), (c0, c0)];
    let mut crops = Vec::with_capacity(10);
    for &(y, x) in &starts {
        let t = Tensor::from_vec(crop(y, x), (3, s, s), dev)?;
        crops.push(flip(&t, &[2])?);
        crops.push(t);
    }
    let batch = Tensor::stack(&crops, 0)?;
    let mut sum: Option<Tensor> = None;
    for axes in [vec![], vec![3], vec![2], vec![2, 3]] {
        let p = candle_nn::ops::softmax(&net.forward(&flip(&batch, &axes)?)?, 1)?;
        sum = Some(match sum {
            None => p,
            Some(a) => (a + p)?,
        });
    }
    let mean = match sum {
        Some(t) => (t / 4.0)?.mean(0)?,
        None => return Err(crate::TaskError::Invalid("no flip variant".into())),
    };
    Ok(mean.to_dtype(candle::DType::F64)?.to_vec1::<f64>()?)
}
