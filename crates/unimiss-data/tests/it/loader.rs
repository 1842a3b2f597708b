//! The pair loader: shapes, shuffle, drop_last, exact resume, independence from thread count.

use unimiss_data::{LoaderConfig, Manifest, Modality, PairLoader};

use crate::common::manifests;

fn samples(m: Modality) -> Vec<unimiss_data::Sample> {
    Manifest::read(manifests().join("sample.tsv"))
        .unwrap()
        .of_modality(m)
}

fn collect(
    loader: &PairLoader,
    epoch: usize,
    start: usize,
) -> Vec<(Vec<usize>, Vec<f32>, Vec<f32>)> {
    loader
        .epoch(epoch, start)
        .map(|b| {
            let b = b.unwrap();
            let [v0, v1] = b.views;
            (
                b.indices,
                v0.flatten_all().unwrap().to_vec1().unwrap(),
                v1.flatten_all().unwrap().to_vec1().unwrap(),
            )
        })
        .collect()
}

#[test]
fn same_batches_whatever_the_thread_count() {
    let base = LoaderConfig {
        batch_size: 2,
        size_3d: [8, 32, 32],
        seed: 11,
        prefetch: 1,
        ..LoaderConfig::default()
    };
    let one = PairLoader::new(
        samples(Modality::Volume3d),
        LoaderConfig {
            threads: 1,
            ..base.clone()
        },
    )
    .unwrap();
    let two = PairLoader::new(
        samples(Modality::Volume3d),
        LoaderConfig {
            threads: 2,
            prefetch: 3,
            ..base
        },
    )
    .unwrap();
    assert_eq!(one.batches_per_epoch(), 3);
    assert_eq!(one.len_dataset(), 6);
    let a = collect(&one, 1, 0);
    assert_eq!(a, collect(&two, 1, 0));
    assert_eq!(a.len(), 3);
    // Exact resume: starting at batch 1 gives batches 1.. of the full epoch.
    assert_eq!(collect(&two, 1, 1), a[1..].to_vec());
    // Every sample once per epoch, order shuffled per epoch.
    let mut idx: Vec<usize> = a.iter().flat_map(|b| b.0.clone()).collect();
    idx.sort();
    assert_eq!(idx, (0..6).collect::<Vec<_>>());
    let orders: Vec<Vec<usize>> = (0..6).map(|e| one.epoch_order(e)).collect();
    assert!(
        orders.windows(2).any(|w| w[0] != w[1]),
        "shuffle changes with the epoch"
    );
}

#[test]
fn planar_batches_drop_last_and_tensor_layout() {
    let s = samples(Modality::Image2d);
    let cfg = LoaderConfig {
        batch_size: 3,
        size_2d: 64,
        threads: 2,
        ..LoaderConfig::default()
    };
    let loader = PairLoader::new(s, cfg).unwrap();
    assert_eq!(
        loader.batches_per_epoch(),
        1,
        "4 samples, batch 3, drop_last"
    );
    let batches: Vec<_> = loader.epoch(0, 0).collect::<Result<_, _>>().unwrap();
    assert_eq!(batches.len(), 1);
    let v = &batches[0].views[0];
    assert_eq!(v.dims(), &[3, 3, 64, 64]);
    let vals: Vec<f32> = v.flatten_all().unwrap().to_vec1().unwrap();
    assert!(vals.iter().all(|x| (0.0..=1.0).contains(x)));
    // Grey X-rays: the three channels are equal.
    let px = 64 * 64;
    assert_eq!(vals[..px], vals[px..2 * px]);
    // Dropping the iterator early stops the workers (no hang).
    let mut it = loader.epoch(1, 0);
    drop(it.next());
    drop(it);
}
