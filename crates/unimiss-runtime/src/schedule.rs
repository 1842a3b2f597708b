//! Schedule shapes: NumPy's `linspace`, the official `utils.cosine_scheduler` (warm-up then a
//! half cosine, per iteration) and the polynomial decay of nnU-Net and the official downstream
//! code.

/// `np.linspace(start, stop, num)` with its exact arithmetic: `start + i·step`, the last value
/// set to `stop`.
pub fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    match num {
        0 => Vec::new(),
        1 => vec![start],
        _ => {
            let step = (stop - start) / (num - 1) as f64;
            let mut v: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
            v[num - 1] = stop;
            v
        }
    }
}

/// `utils.cosine_scheduler(base, final, epochs, niter_per_ep, warmup_epochs, start_warmup)`:
/// a linear warm-up (`linspace`, both ends included) followed by a half cosine from `base` to
/// `final`; `epochs·niter_per_ep` values.
pub fn cosine_scheduler(
    base: f64,
    final_value: f64,
    epochs: usize,
    niter_per_ep: usize,
    warmup_epochs: usize,
    start_warmup_value: f64,
) -> Vec<f64> {
    let total = epochs * niter_per_ep;
    let warmup_iters = (warmup_epochs * niter_per_ep).min(total);
    let mut out = if warmup_epochs > 0 {
        linspace(start_warmup_value, base, warmup_iters)
    } else {
        Vec::new()
    };
    let l = total - warmup_iters;
    out.extend((0..l).map(|i| {
        final_value
            + 0.5 * (base - final_value) * (1.0 + (std::f64::consts::PI * i as f64 / l as f64).cos())
    }));
    out
}

/// The polynomial ("poly") decay of nnU-Net and the official downstream code:
/// `base · (1 − t/total)^exponent`, 0 from `total` on.
pub fn poly(base: f64, t: usize, total: usize, exponent: f64) -> f64 {
    base * (1.0 - t as f64 / total.max(1) as f64).max(0.0).powf(exponent)
}

