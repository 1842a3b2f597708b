//! The official sub-volume protocol (reference §4.3) and resampling.

use unimiss_data::read_nifti_image;
use unimiss_data::resample::resample_to_spacing;
use unimiss_data::subvolumes::{Protocol, extract_subvolumes, inplane_range, stem, tile_ranges};

use crate::common::manifests;

#[test]
fn tile_ranges_follow_the_official_formula() {
    let t = tile_ranges(137, Protocol::UniMiss);
    assert_eq!(t.len(), 30); // ceil(113 / 4) + 1
    assert_eq!((t[0], t[28], t[29]), ((0, 24), (112, 136), (113, 137)));
    assert_eq!(
        tile_ranges(30, Protocol::UniMiss),
        [(0, 24), (4, 28), (6, 30)]
    );
    assert_eq!(tile_ranges(24, Protocol::UniMiss), [(0, 24)]);
    assert_eq!(tile_ranges(22, Protocol::UniMiss), [(0, 22)]); // short tile, not an error
    assert!(tile_ranges(20, Protocol::UniMiss).is_empty()); // ceil(-1) + 1 = 0, as officially
    assert_eq!(
        tile_ranges(50, Protocol::UniMissPlus),
        [(0, 24), (12, 36), (24, 48), (26, 50)]
    );
    assert_eq!(inplane_range(250, Protocol::UniMiss, 250), (25, 225));
    assert_eq!(inplane_range(161, Protocol::UniMiss, 161), (16, 144));
    assert_eq!(inplane_range(250, Protocol::UniMissPlus, 250), (0, 250));
    assert_eq!(stem(std::path::Path::new("/a/b c.nii.gz")), "b c");
    assert_eq!(stem(std::path::Path::new("x.nii")), "x");
}

#[test]
fn extraction_keeps_values_and_geometry() {
    let dir = tempfile::tempdir().unwrap();
    let src_path = manifests().join("sample/ct/000001_02_01_008-023_dep2.nii.gz");
    let src = read_nifti_image(&src_path).unwrap();
    let out = extract_subvolumes(&src_path, dir.path(), Protocol::UniMiss).unwrap();
    assert_eq!(
        out,
        [dir.path().join("000001_02_01_008-023_dep2_dep0.nii.gz")]
    );
    let tile = read_nifti_image(&out[0]).unwrap();
    assert_eq!(tile.header.dims, [103, 103, 24]); // int(12.8) : int(115.2) in-plane
    assert_eq!(tile.header.affine(), src.header.affine());
    assert_eq!(tile.header.spacing_xyz(), src.header.spacing_xyz());
    for (x, y, z) in [(0, 0, 0), (50, 20, 10), (102, 102, 23)] {
        assert_eq!(tile.at(x, y, z), src.at(x + 12, y + 12, z));
    }
}

#[test]
fn resample_halves_and_keeps_world_positions() {
    let src =
        read_nifti_image(manifests().join("sample/ct/000001_02_01_008-023_dep0.nii.gz")).unwrap();
    let out = resample_to_spacing(&src, [2.0, 2.0, 3.0]).unwrap();
    assert_eq!(out.header.dims, [64, 64, 8]);
    assert_eq!(out.header.spacing_xyz(), [2.0, 2.0, 3.0]);
    // Output voxel (0,0,0) sits at input coordinate (0.5, 0.5, 1): the affine says so.
    let (a, b) = (src.header.affine(), out.header.affine());
    for r in 0..3 {
        let want = a[r][0] * 0.5 + a[r][1] * 0.5 + a[r][2] * 1.0 + a[r][3];
        assert!(
            (b[r][3] - want).abs() < 1e-9,
            "row {r}: {} vs {want}",
            b[r][3]
        );
    }
    // Trilinear value: mean of the 2x2 in-plane neighbours at z = 1 (exactly between).
    let want = (src.at(0, 0, 1) + src.at(1, 0, 1) + src.at(0, 1, 1) + src.at(1, 1, 1)) / 4.0;
    assert!(
        (out.at(0, 0, 0) - want.round()).abs() <= 0.5,
        "{} vs {want}",
        out.at(0, 0, 0)
    );
}
