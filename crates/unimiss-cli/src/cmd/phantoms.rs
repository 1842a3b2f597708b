//! `cargo xtask phantoms --out DIR --seed S [--count N] [--dims D,H,W] [--size-2d N]`: a labelled synthetic CT / radiograph
//! benchmark with train/val/test manifests for the four tasks and an unlabelled pretraining
//! manifest (see `unimiss_tasks::phantoms`).

use std::path::PathBuf;

use unimiss_tasks::phantoms::{PhantomConfig, generate};

#[derive(clap::Args)]
pub struct Args {
    /// Output directory.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Number of cases (split 60/20/20 into train/val/test).
    #[arg(long, default_value_t = 40)]
    pub count: usize,
    /// Volume size D,H,W (volumes larger than a segmentation patch are covered by several sliding windows).
    #[arg(long, default_value = "32,64,64")]
    pub dims: String,
    /// Side of the square projections.
    #[arg(long, default_value_t = 64)]
    pub size_2d: usize,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let dims: Vec<usize> = args.dims.split(',').map(|v| v.trim().parse::<usize>()).collect::<Result<_, _>>().map_err(|e| anyhow::anyhow!("--dims {:?}: {e} (expected D,H,W)", args.dims))?;
    let dims: [usize; 3] = dims.try_into().map_err(|d: Vec<usize>| anyhow::anyhow!("--dims {:?}: {} numbers, expected D,H,W", args.dims, d.len()))?;
    let cfg = PhantomConfig { count: args.count, seed: args.seed, dims, size_2d: args.size_2d, ..PhantomConfig::default() };
    let t0 = std::time::Instant::now();
    let s = generate(&args.out, &cfg, &mut |done, total| {
        if done % 10 == 0 || done == total {
            let el = t0.elapsed().as_secs_f64();
            eprintln!("phantoms: {done}/{total} cases, {:.1} cases/s, ETA {:.0} s", done as f64 / el, el / done as f64 * (total - done) as f64);
        }
    })?;
    println!(
        "phantoms: {} train / {} val / {} test cases ({} with a lesion) in {}; manifests {{cls3d,seg3d,cls2d,seg2d}}_{{train,val,test}}.tsv, pretrain.tsv",
        s.train,
        s.val,
        s.test,
        s.lesions,
        args.out.display()
    );
    Ok(())
}
