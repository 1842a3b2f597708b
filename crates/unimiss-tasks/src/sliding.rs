//! nnU-Net-style sliding-window inference: tiles of the patch size placed with a step of
//! `step · patch` voxels, a Gaussian importance map (σ = patch/8, scipy's 4σ truncation, zeros
//! replaced by the smallest non-zero weight), optional mirroring over all axis-flip combinations,
//! and a weighted average of the overlapping predictions. Segmentation inference
//! ([`crate::seg_infer`]) runs every `seg3d` volume and `seg2d` image (a depth-1 volume with
//! patch `[1, h, w]`) through it.
//!
//! The model is a callback from a batch of patches `(B, C, pd, ph, pw)` to per-class
//! probabilities `(B, K, pd, ph, pw)`; the stitcher never applies a softmax itself.

use candle::{DType, Device, Tensor};

use crate::error::{Result, TaskError};

/// Settings of the stitcher.
#[derive(Debug, Clone, PartialEq)]
pub struct SlidingWindow {
    /// Patch size `(pd, ph, pw)`.
    pub patch: [usize; 3],
    /// Step between tiles as a fraction of the patch (nnU-Net `step_size`; overlap = 1 − step).
    pub step: f64,
    /// Weight tiles with the Gaussian importance map (else uniformly).
    pub gaussian: bool,
    /// Average the predictions over the flip combinations of the axes (8 in 3D; axes of patch
    /// extent 1 are not flipped, so 4 for a 2D patch `[1, h, w]`).
    pub mirror: bool,
    /// Patches per model call.
    pub batch: usize,
}

impl SlidingWindow {
    /// Settings with nnU-Net's defaults (step 0.5, Gaussian, mirroring, batch 1).
    pub fn new(patch: [usize; 3]) -> Self {
        Self { patch, step: 0.5, gaussian: true, mirror: true, batch: 1 }
    }

    fn validate(&self) -> Result<()> {
        if self.patch.contains(&0) || !(self.step > 0.0 && self.step <= 1.0) || self.batch == 0 {
            return Err(TaskError::Invalid(format!(
                "sliding window: patch {:?} must be non-zero, step {} in (0, 1], batch {} >= 1",
                self.patch, self.step, self.batch
            )));
        }
        Ok(())
    }

    /// Tile start positions per axis for an image of `size` (each axis at least the patch).
    pub fn steps(&self, size: [usize; 3]) -> [Vec<usize>; 3] {
        std::array::from_fn(|a| {
            let (n, p) = (size[a], self.patch[a]);
            let max_step = n.saturating_sub(p);
            let num = ((max_step as f64) / (p as f64 * self.step)).ceil() as usize + 1;
            if num < 2 {
                return vec![0];
            }
            let actual = max_step as f64 / (num - 1) as f64;
            (0..num).map(|i| (actual * i as f64).round_ties_even() as usize).collect()
        })
    }

    /// The importance map over one patch, row-major `(pd, ph, pw)`, maximum 1.
    pub fn importance_map(&self) -> Vec<f32> {
        let n: usize = self.patch.iter().product();
        if !self.gaussian {
            return vec![1.0; n];
        }
        let axis = |p: usize| -> Vec<f64> {
            let sigma = p as f64 / 8.0;
            let radius = (4.0 * sigma + 0.5) as i64;
            let c = (p / 2) as i64;
            (0..p as i64)
                .map(|i| {
                    let x = i - c;
                    if x.abs() <= radius { (-0.5 * (x * x) as f64 / (sigma * sigma)).exp() } else { 0.0 }
                })
                .collect()
        };
        let [gd, gh, gw] = [axis(self.patch[0]), axis(self.patch[1]), axis(self.patch[2])];
        let mut m = Vec::with_capacity(n);
        for a in &gd {
            for b in &gh {
                for c in &gw {
                    m.push((a * b * c) as f32);
                }
            }
        }
        let min_nz = m.iter().copied().filter(|&v| v > 0.0).fold(f32::INFINITY, f32::min);
        m.iter_mut().filter(|v| **v == 0.0).for_each(|v| *v = min_nz);
        m
    }

    /// The summed importance weight that each voxel of an image of `size` receives (after
    /// padding to at least the patch, before cropping back).
    pub fn weight_sum(&self, size: [usize; 3]) -> Result<Vec<f32>> {
        self.validate()?;
        let padded: [usize; 3] = std::array::from_fn(|a| size[a].max(self.patch[a]));
        let g = self.importance_map();
        let mut acc = vec![0f32; padded.iter().product()];
        for start in self.tiles(padded) {
            add_patch(&mut acc, padded, &g, self.patch, start);
        }
        Ok(crop(&acc, 1, padded, size))
    }

    fn tiles(&self, size: [usize; 3]) -> Vec<[usize; 3]> {
        let [sd, sh, sw] = self.steps(size);
        let mut t = Vec::new();
        for &d in &sd {
            for &h in &sh {
                for &w in &sw {
                    t.push([d, h, w]);
                }
            }
        }
        t
    }

    /// Predicts a whole volume `(C, D, H, W)`; returns `(K, D, H, W)` f32 probabilities on the
    /// CPU. Axes smaller than the patch are zero-padded symmetrically and cropped back.
    pub fn run(&self, image: &Tensor, predict: &mut dyn FnMut(&Tensor) -> Result<Tensor>) -> Result<Tensor> {
        self.validate()?;
        let (_, d, h, w) = image.dims4()?;
        let size = [d, h, w];
        let padded: [usize; 3] = std::array::from_fn(|a| size[a].max(self.patch[a]));
        let mut x = image.clone();
        for a in 0..3 {
            if padded[a] > size[a] {
                let lo = (padded[a] - size[a]) / 2;
                x = x.pad_with_zeros(a + 1, lo, padded[a] - size[a] - lo)?;
            }
        }
        let g = self.importance_map();
        let tiles = self.tiles(padded);
        let mut acc: Vec<f32> = Vec::new();
        let mut wsum = vec![0f32; padded.iter().product()];
        let mut k = 0;
        for chunk in tiles.chunks(self.batch) {
            let patches = chunk
                .iter()
                .map(|s| {
                    let mut p = x.clone();
                    for a in 0..3 {
                        p = p.narrow(a + 1, s[a], self.patch[a])?;
                    }
                    Ok(p)
                })
                .collect::<Result<Vec<_>>>()?;
            let batch = Tensor::stack(&patches, 0)?;
            let probs = self.predict_maybe_mirrored(&batch, &mut *predict)?;
            let (b, kk, pd, ph, pw) = probs.dims5()?;
            if b != chunk.len() || [pd, ph, pw] != self.patch {
                return Err(TaskError::ShapeMismatch {
                    what: "sliding-window model output (B, K, patch…)".into(),
                    got: probs.dims().to_vec(),
                    expected: vec![chunk.len(), kk, self.patch[0], self.patch[1], self.patch[2]],
                });
            }
            if acc.is_empty() {
                k = kk;
                acc = vec![0f32; k * padded.iter().product::<usize>()];
            }
            let probs: Vec<f32> = probs.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
            let per = k * self.patch.iter().product::<usize>();
            let vox: usize = padded.iter().product();
            for (i, s) in chunk.iter().enumerate() {
                let pr = &probs[i * per..(i + 1) * per];
                let pn = self.patch.iter().product::<usize>();
                for ch in 0..k {
                    let weighted: Vec<f32> = pr[ch * pn..(ch + 1) * pn].iter().zip(&g).map(|(p, w)| p * w).collect();
                    add_patch(&mut acc[ch * vox..(ch + 1) * vox], padded, &weighted, self.patch, *s);
                }
                add_patch(&mut wsum, padded, &g, self.patch, *s);
            }
        }
        let vox: usize = padded.iter().product();
        for ch in 0..k {
            for (a, w) in acc[ch * vox..(ch + 1) * vox].iter_mut().zip(&wsum) {
                *a /= w;
            }
        }
        let out = crop(&acc, k, padded, size);
        Ok(Tensor::from_vec(out, (k, d, h, w), &Device::Cpu)?)
    }

    fn predict_maybe_mirrored(&self, batch: &Tensor, predict: &mut dyn FnMut(&Tensor) -> Result<Tensor>) -> Result<Tensor> {
        if !self.mirror {
            return predict(batch);
        }
        // flipping an axis of extent 1 (the depth of a 2D image) changes nothing: those
        // combinations would repeat others
        let mirrored: Vec<usize> = (0..3).filter(|&a| self.patch[a] > 1).collect();
        let mut sum: Option<Tensor> = None;
        let combos = 1u8 << mirrored.len();
        for combo in 0..combos {
            let axes: Vec<usize> = mirrored.iter().enumerate().filter(|(i, _)| combo & (1 << i) != 0).map(|(_, &a)| a + 2).collect();
            let p = flip(&predict(&flip(batch, &axes)?)?, &axes)?;
            sum = Some(match sum {
                None => p,
                Some(s) => (s + p)?,
            });
        }
        let s = sum.ok_or_else(|| TaskError::Invalid("mirroring produced no prediction".into()))?;
        Ok((s / combos as f64)?)
    }
}

/// Reverses `t` along each of `axes`.
pub fn flip(t: &Tensor, axes: &[usize]) -> Result<Tensor> {
    let mut t = t.clone();
    for &a in axes {
        let n = t.dim(a)?;
        let idx = Tensor::from_vec((0..n as u32).rev().collect::<Vec<u32>>(), n, t.device())?;
        t = t.contiguous()?.index_select(&idx, a)?;
    }
    Ok(t)
}

/// `acc[start + i] += patch[i]` on a `size` grid.
fn add_patch(acc: &mut [f32], size: [usize; 3], patch: &[f32], p: [usize; 3], start: [usize; 3]) {
    for z in 0..p[0] {
        for y in 0..p[1] {
            let dst = ((start[0] + z) * size[1] + start[1] + y) * size[2] + start[2];
            let src = (z * p[1] + y) * p[2];
            for (a, v) in acc[dst..dst + p[2]].iter_mut().zip(&patch[src..src + p[2]]) {
                *a += v;
            }
        }
    }
}

/// Crops `k` channels of a `padded` grid to the centred `size` region.
fn crop(data: &[f32], k: usize, padded: [usize; 3], size: [usize; 3]) -> Vec<f32> {
    let lo: [usize; 3] = std::array::from_fn(|a| (padded[a] - size[a]) / 2);
    let pv: usize = padded.iter().product();
    let mut out = Vec::with_capacity(k * size.iter().product::<usize>());
    for ch in 0..k {
        for z in 0..size[0] {
            for y in 0..size[1] {
                let s = ch * pv + ((lo[0] + z) * padded[1] + lo[1] + y) * padded[2] + lo[2];
                out.extend_from_slice(&data[s..s + size[2]]);
            }
        }
    }
    out
}
