//! Any byte string given to the NIfTI reader returns `Ok` or `Err`, never panics, and never
//! allocates beyond the voxel limit (4 Mi voxels here).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok(img) = unimiss_data::nifti::read_nifti_bytes(Path::new("fuzz.nii"), data, 1 << 22) {
        let [nx, ny, nz] = img.header.dims;
        assert_eq!(img.data.len(), nx * ny * nz);
        let _ = img.header.affine();
        let vol = img.into_volume();
        assert_eq!(vol.data.len(), vol.dims.iter().product::<usize>());
    }
});
