//! `cargo xtask phantoms --out DIR --seed S [--count N] [--dims D,H,W] [--spacing D,H,W]
//! [--size-2d N]`: a labelled synthetic CT / radiograph benchmark with train/val/test manifests
//! for the four tasks, 10 %-label training manifests, an unlabelled pretraining manifest and
//! labelled eval manifests for the kNN monitor (see `unimiss_tasks::phantoms`).

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
    /// Volume size D,H,W.
    #[arg(long, value_parser = crate::args::parse_size3, default_value = "32,96,96")]
    pub dims: [usize; 3],
    /// Typical voxel size D,H,W in mm (each case scales it by 0.8–1.25).
    #[arg(long, value_parser = unimiss_data::manifest::parse_spacing, default_value = "2.5,0.9,0.9")]
    pub spacing: [f64; 3],
    /// Side of the square projections.
    #[arg(long, default_value_t = 128)]
    pub size_2d: usize,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let cfg = PhantomConfig { count: args.count, seed: args.seed, dims: args.dims, spacing: args.spacing, size_2d: args.size_2d };
    let t0 = std::time::Instant::now();
    let s = generate(&args.out, &cfg, &mut |done, total| {
        if done % 10 == 0 || done == total {
            let el = t0.elapsed().as_secs_f64();
            eprintln!("phantoms: {done}/{total} cases, {:.1} cases/s, ETA {:.0} s", done as f64 / el, el / done as f64 * (total - done) as f64);
        }
    })?;
    println!(
        "phantoms: {} train / {} val / {} test cases ({} with a lesion, {} with a large liver) in {}; manifests {{cls3d,seg3d,cls2d,seg2d}}_{{train,train_10pct,val,test}}.tsv, pretrain.tsv, eval_{{lesion,liver}}.tsv",
        s.train,
        s.val,
        s.test,
        s.lesions,
        s.large_livers,
        args.out.display()
    );
    Ok(())
}
