//! Reader correctness on the real samples (values computed independently with nibabel 5.4
//! `get_fdata()`), the model-order transpose, every datatype and byte order, NIfTI-2, and the
//! writer round trip.

use unimiss_data::nifti::{
    DEFAULT_MAX_VOXELS, Datatype, OutputType, read_nifti_bytes, write_nifti,
};
use unimiss_data::{read_image, read_nifti, read_nifti_image};

use crate::common::{close, manifests, shared_data};

#[test]
#[ignore = "needs the real data: set UNIMISS_DATA (default ../shared/data), run with --include-ignored"]
fn ricord_volume_matches_nibabel() {
    let root = shared_data();
    let img = read_nifti_image(root.join("ct-volumes/ID440808-000100_ricord1b.nii.gz")).unwrap();
    let h = &img.header;
    assert_eq!(h.dims, [147, 147, 137]);
    assert_eq!(h.datatype, Datatype::I16);
    assert_eq!((h.qform_code, h.sform_code), (1, 0));
    assert_eq!(h.spacing_xyz(), [2.0, 2.0, 2.0]);
    // nibabel img.affine (qform, negative x axis).
    let want = [
        [-2.0, 0.0, 0.0, 148.199997],
        [0.0, 2.0, 0.0, -118.223892],
        [0.0, 0.0, 2.0, -272.75],
    ];
    for (got, want) in h.affine().iter().flatten().zip(want.iter().flatten()) {
        close(*got, *want, 1e-4, "affine");
    }
    for ((x, y, z), v) in [
        ((0, 0, 0), -1024.0),
        ((10, 20, 5), -1024.0),
        ((73, 49, 136), -55.0),
        ((146, 146, 68), -1024.0),
    ] {
        assert_eq!(img.at(x, y, z), v, "voxel ({x},{y},{z})");
    }
    let sum: f64 = img.data.iter().map(|&v| f64::from(v)).sum();
    assert_eq!(sum, -1422430239.0);
    let (mn, mx) = img
        .data
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    assert_eq!((mn, mx), (-1024.0, 1024.0));
    // Model order (D, H, W) = (z, x, y).
    let vol = img.clone().into_volume();
    assert_eq!(vol.dims, [137, 147, 147]);
    assert_eq!(vol.at(136, 73, 49), -55.0);
    assert_eq!(vol.spacing, [2.0, 2.0, 2.0]);
}

#[test]
#[ignore = "needs the real data: set UNIMISS_DATA (default ../shared/data), run with --include-ignored"]
fn deeplesion_tile_matches_nibabel() {
    let root = shared_data();
    let vol = read_nifti(root.join("ct-subvolumes/000001_01_01_103-115_dep0.nii.gz")).unwrap();
    assert_eq!(vol.dims, [24, 250, 250]);
    // (x, y, z) = (125, 83, 23) -> (d, h, w) = (23, 125, 83).
    assert_eq!(vol.at(23, 125, 83), -689.0);
    assert_eq!(vol.at(12, 249, 249), -1024.0);
    // Axis-permuting sform, as nibabel reports it.
    let want = [
        [0.0, -1.0, 0.0, 0.0],
        [-1.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, -1.0, 0.0],
    ];
    assert_eq!(vol.affine, want);
    let mean = vol.data.iter().map(|&v| f64::from(v)).sum::<f64>() / vol.data.len() as f64;
    close(mean, -414.35466866666667, 1e-9, "mean");
}

#[test]
fn shipped_sample_matches_nibabel() {
    let vol = read_nifti(manifests().join("sample/ct/000001_02_01_008-023_dep0.nii.gz")).unwrap();
    assert_eq!(vol.dims, [24, 128, 128]);
    for ((x, y, z), v) in [
        ((0, 0, 0), -1006.0),
        ((10, 20, 5), -995.0),
        ((64, 42, 23), 16.0),
        ((127, 127, 12), -868.0),
    ] {
        assert_eq!(vol.at(z, x, y), v, "voxel ({x},{y},{z})");
    }
    let sum: f64 = vol.data.iter().map(|&v| f64::from(v)).sum();
    assert_eq!(sum, -169454790.0);
}

#[test]
fn png_values_match_pillow() {
    // RGB file with identical channels -> one grey plane.
    let img = read_image(manifests().join("sample/cxr/00000002_000.png")).unwrap();
    assert_eq!((img.width, img.height, img.channels), (256, 256, 1));
    close(
        f64::from(img.data[100 * 256 + 200]),
        136.0 / 255.0,
        1e-6,
        "pixel",
    );
    close(f64::from(img.data[255 * 256]), 50.0 / 255.0, 1e-6, "pixel");
    let mean = img.data.iter().map(|&v| f64::from(v)).sum::<f64>() / img.data.len() as f64;
    close(mean * 255.0, 180.1931915283203, 1e-3, "mean");
}

#[test]
#[ignore = "needs the real data: set UNIMISS_DATA (default ../shared/data), run with --include-ignored"]
fn real_png_values_match_pillow() {
    let root = shared_data();
    let img = read_image(root.join("cxr/00000001_000.png")).unwrap();
    assert_eq!((img.width, img.height, img.channels), (512, 512, 1));
    close(
        f64::from(img.data[100 * 512 + 200]) * 255.0,
        86.0,
        1e-4,
        "pixel",
    );
    let mean = img.data.iter().map(|&v| f64::from(v)).sum::<f64>() / img.data.len() as f64;
    close(mean * 255.0, 128.2576446533203, 1e-3, "mean");
}

#[test]
fn png_16_bit_rgb_and_jpeg() {
    let dir = tempfile::tempdir().unwrap();
    let p16 = dir.path().join("g16.png");
    let g = image::ImageBuffer::<image::Luma<u16>, _>::from_fn(5, 4, |x, y| {
        image::Luma([(x * 10000 + y) as u16])
    });
    g.save(&p16).unwrap();
    let img = read_image(&p16).unwrap();
    assert_eq!((img.width, img.height, img.channels), (5, 4, 1));
    close(
        f64::from(img.data[3 * 5 + 4]),
        40003.0 / 65535.0,
        1e-6,
        "16-bit",
    );
    let prgb = dir.path().join("c.png");
    let c = image::RgbImage::from_fn(3, 2, |x, y| image::Rgb([x as u8 * 50, y as u8 * 100, 7]));
    c.save(&prgb).unwrap();
    let img = read_image(&prgb).unwrap();
    assert_eq!(img.channels, 3);
    close(f64::from(img.rgb_plane(0)[2]), 100.0 / 255.0, 1e-6, "red");
    close(f64::from(img.rgb_plane(1)[3]), 100.0 / 255.0, 1e-6, "green");
    close(f64::from(img.rgb_plane(2)[5]), 7.0 / 255.0, 1e-6, "blue");
    let pj = dir.path().join("g.jpg");
    image::GrayImage::from_fn(16, 16, |_, _| image::Luma([128]))
        .save(&pj)
        .unwrap();
    let img = read_image(&pj).unwrap();
    assert_eq!((img.width, img.channels), (16, 1));
    close(f64::from(img.data[17]) * 255.0, 128.0, 2.0, "jpeg grey");
}

/// Builds a NIfTI-1 or NIfTI-2 file by hand: dims (2, 3, 4), values v(i) = i - 5 stored as `code`.
fn synth(version: u8, big_endian: bool, code: i16, slope: f32, inter: f32) -> Vec<u8> {
    let size: usize = match code {
        2 | 256 => 1,
        4 | 512 => 2,
        8 | 16 | 768 => 4,
        _ => 8,
    };
    let n = 24;
    let (hlen, off): (i32, usize) = if version == 1 { (348, 352) } else { (540, 544) };
    let mut b = vec![0u8; off];
    let put = |b: &mut Vec<u8>, at: usize, bytes: &[u8]| {
        let mut v = bytes.to_vec();
        if big_endian {
            v.reverse();
        }
        b[at..at + v.len()].copy_from_slice(&v);
    };
    put(&mut b, 0, &hlen.to_le_bytes());
    if version == 1 {
        for (i, d) in [3i16, 2, 3, 4, 1, 1, 1, 1].iter().enumerate() {
            put(&mut b, 40 + 2 * i, &d.to_le_bytes());
        }
        put(&mut b, 70, &code.to_le_bytes());
        for (i, p) in [1f32, 0.5, 0.75, 3.0].iter().enumerate() {
            put(&mut b, 76 + 4 * i, &p.to_le_bytes());
        }
        put(&mut b, 108, &(off as f32).to_le_bytes());
        put(&mut b, 112, &slope.to_le_bytes());
        put(&mut b, 116, &inter.to_le_bytes());
        b[344..348].copy_from_slice(b"n+1\0");
    } else {
        b[4..12].copy_from_slice(b"n+2\0\r\n\x1a\n");
        put(&mut b, 12, &code.to_le_bytes());
        for (i, d) in [3i64, 2, 3, 4, 1, 1, 1, 1].iter().enumerate() {
            put(&mut b, 16 + 8 * i, &d.to_le_bytes());
        }
        for (i, p) in [1f64, 0.5, 0.75, 3.0].iter().enumerate() {
            put(&mut b, 104 + 8 * i, &p.to_le_bytes());
        }
        put(&mut b, 168, &(off as i64).to_le_bytes());
        put(&mut b, 176, &f64::from(slope).to_le_bytes());
        put(&mut b, 184, &f64::from(inter).to_le_bytes());
    }
    for i in 0..n {
        let v = i as i64 - 5;
        let raw: Vec<u8> = match code {
            2 => vec![(v + 5) as u8],
            256 => vec![v as i8 as u8],
            4 => (v as i16).to_le_bytes().to_vec(),
            512 => ((v + 5) as u16).to_le_bytes().to_vec(),
            8 => (v as i32).to_le_bytes().to_vec(),
            768 => ((v + 5) as u32).to_le_bytes().to_vec(),
            16 => (v as f32).to_le_bytes().to_vec(),
            64 => (v as f64).to_le_bytes().to_vec(),
            1024 => v.to_le_bytes().to_vec(),
            _ => ((v + 5) as u64).to_le_bytes().to_vec(),
        };
        assert_eq!(raw.len(), size);
        let mut raw = raw;
        if big_endian {
            raw.reverse();
        }
        b.extend_from_slice(&raw);
    }
    b
}

#[test]
fn every_datatype_both_byte_orders_both_versions() {
    let name = std::path::Path::new("synthetic.nii");
    for version in [1u8, 2] {
        for be in [false, true] {
            for code in [2i16, 256, 4, 512, 8, 768, 16, 64, 1024, 1280] {
                let unsigned = matches!(code, 2 | 512 | 768 | 1280);
                let bytes = synth(version, be, code, f32::NAN, 0.0);
                let img = read_nifti_bytes(name, &bytes, DEFAULT_MAX_VOXELS)
                    .unwrap_or_else(|e| panic!("v{version} be={be} code {code}: {e}"));
                assert_eq!(img.header.dims, [2, 3, 4]);
                assert_eq!(img.header.spacing_xyz(), [0.5, 0.75, 3.0]);
                for (i, &v) in img.data.iter().enumerate() {
                    let want = if unsigned { i as f32 } else { i as f32 - 5.0 };
                    assert_eq!(v, want, "v{version} be={be} code {code} voxel {i}");
                }
                // Slope 2, intercept -1 applies; slope 0 means none.
                let scaled = read_nifti_bytes(
                    name,
                    &synth(version, be, code, 2.0, -1.0),
                    DEFAULT_MAX_VOXELS,
                )
                .unwrap();
                assert_eq!(scaled.data[7], 2.0 * img.data[7] - 1.0);
                let zero = read_nifti_bytes(
                    name,
                    &synth(version, be, code, 0.0, 9.0),
                    DEFAULT_MAX_VOXELS,
                )
                .unwrap();
                assert_eq!(zero.data, img.data);
            }
        }
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// `read_nifti` decodes straight into (z, x, y) order; it must equal the file-order decode
/// followed by the transpose, for every datatype, byte order, version, plain and gzip, and on
/// the real tile (250 x 250 x 24, several transpose tiles).
#[test]
fn direct_model_order_decode_matches_transpose() {
    let dir = tempfile::tempdir().unwrap();
    for version in [1u8, 2] {
        for be in [false, true] {
            for code in [2i16, 256, 4, 512, 8, 768, 16, 64, 1024, 1280] {
                let bytes = synth(version, be, code, 2.0, -1.0);
                let want =
                    read_nifti_bytes(std::path::Path::new("s.nii"), &bytes, DEFAULT_MAX_VOXELS)
                        .unwrap()
                        .into_volume();
                for (name, data) in [("s.nii", bytes.clone()), ("s.nii.gz", gzip(&bytes))] {
                    let p = dir.path().join(name);
                    std::fs::write(&p, data).unwrap();
                    let got = read_nifti(&p).unwrap();
                    assert_eq!(
                        (got.dims, &got.data),
                        (want.dims, &want.data),
                        "v{version} be={be} code {code} {name}"
                    );
                    assert_eq!(got.spacing, want.spacing);
                }
            }
        }
    }
    let tile = manifests().join("sample/ct/000001_02_01_008-023_dep0.nii.gz");
    let want = read_nifti_image(&tile).unwrap().into_volume();
    let got = read_nifti(&tile).unwrap();
    assert_eq!(got.dims, want.dims);
    assert!(
        got.data == want.data,
        "direct decode differs from the transpose"
    );
    // A stream split into two gzip members reads the same.
    let raw = unimiss_data::nifti::read_decompressed(&tile).unwrap();
    let mut two = gzip(&raw[..raw.len() / 3]);
    two.extend(gzip(&raw[raw.len() / 3..]));
    let p = dir.path().join("two_members.nii.gz");
    std::fs::write(&p, two).unwrap();
    assert!(
        read_nifti(&p).unwrap().data == want.data,
        "multi-member gzip differs"
    );
}

#[test]
fn transpose_to_model_order() {
    let img = read_nifti_bytes(
        std::path::Path::new("t.nii"),
        &synth(1, false, 4, 1.0, 0.0),
        DEFAULT_MAX_VOXELS,
    )
    .unwrap();
    let vol = img.clone().into_volume();
    assert_eq!(vol.dims, [4, 2, 3]); // (z, x, y)
    assert_eq!(vol.spacing, [3.0, 0.5, 0.75]);
    for z in 0..4 {
        for x in 0..2 {
            for y in 0..3 {
                assert_eq!(vol.at(z, x, y), img.at(x, y, z));
            }
        }
    }
}

#[test]
fn writer_round_trip_int16_and_f32() {
    let dir = tempfile::tempdir().unwrap();
    let src =
        read_nifti_image(manifests().join("sample/ct/000001_02_01_008-023_dep1.nii.gz")).unwrap();
    for (name, ty) in [
        ("a.nii.gz", OutputType::Int16),
        ("b.nii", OutputType::Float32),
    ] {
        let p = dir.path().join(name);
        let data: Vec<f32> = src.data.iter().map(|v| v + 0.25).collect();
        write_nifti(&p, &src.header, src.header.dims, &data, ty).unwrap();
        let back = read_nifti_image(&p).unwrap();
        assert_eq!(back.header.dims, src.header.dims);
        assert_eq!(back.header.affine(), src.header.affine());
        assert_eq!(back.header.spacing_xyz(), src.header.spacing_xyz());
        let want: Vec<f32> = match ty {
            OutputType::Int16 => data.iter().map(|v| v.trunc()).collect(),
            OutputType::Float32 => data.clone(),
        };
        assert_eq!(back.data, want);
    }
}

#[test]
fn nibabel_written_nifti1_and_nifti2() {
    // fuzz/corpus seeds written by nibabel 5.4: a[x, y, z] = 8x + 2y + z - 10, dims (4, 4, 2).
    let dir =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/nifti_reader");
    for (name, spacing) in [
        ("seed_int16.nii", [2.0, 2.0, 3.0]),
        ("seed_f32_v2.nii", [1.0, 1.0, 1.0]),
    ] {
        let img = read_nifti_image(dir.join(name)).unwrap();
        assert_eq!(img.header.dims, [4, 4, 2], "{name}");
        assert_eq!(img.header.spacing_xyz(), spacing, "{name}");
        for x in 0..4 {
            for y in 0..4 {
                for z in 0..2 {
                    assert_eq!(
                        img.at(x, y, z),
                        (8 * x + 2 * y + z) as f32 - 10.0,
                        "{name} ({x},{y},{z})"
                    );
                }
            }
        }
    }
}
