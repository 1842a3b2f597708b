//! Any byte string given to the PNG/JPEG reader returns `Ok` or `Err`, never panics, and a
//! decoded image is consistent: `channels` is 1 or 3, the data has C·H·W values in [0, 1].
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok(img) = unimiss_data::image2d::read_image_bytes(Path::new("fuzz.png"), data) {
        assert!(img.channels == 1 || img.channels == 3);
        assert_eq!(img.data.len(), img.channels * img.width * img.height);
        assert!(img.data.iter().all(|v| (0.0..=1.0).contains(v)));
    }
});
