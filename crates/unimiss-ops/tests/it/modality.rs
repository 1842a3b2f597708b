//! The one 2D/3D type: spellings, serde, rank detection and its errors.

use std::path::Path;

use candle::{Device, Tensor};
use unimiss_ops::Modality;

#[test]
fn names_tags_and_parsing() {
    assert_eq!(Modality::ALL, [Modality::Image2d, Modality::Volume3d]);
    assert_eq!(Modality::Image2d.to_string(), "2d");
    assert_eq!(Modality::Volume3d.to_string(), "3d");
    assert_eq!((Modality::Image2d.name(), Modality::Volume3d.name()), ("2d", "3d"));
    assert_eq!((Modality::Image2d.tag(), Modality::Volume3d.tag()), ("2D", "3D"));
    assert_eq!((Modality::Image2d.in_channels(), Modality::Volume3d.in_channels()), (3, 1));
    for m in Modality::ALL {
        assert_eq!(m.name().parse::<Modality>(), Ok(m));
        assert_eq!(m.tag().parse::<Modality>(), Ok(m));
    }
    assert_eq!(" Image2D ".parse::<Modality>(), Ok(Modality::Image2d));
    assert_eq!("volume3d".parse::<Modality>(), Ok(Modality::Volume3d));
    let e = "4d".parse::<Modality>().err().unwrap_or_default();
    assert!(e.contains("\"4d\"") && e.contains("neither 2d nor 3d"), "{e}");
}

#[test]
fn serde_round_trip_as_2d_3d() -> serde_json::Result<()> {
    assert_eq!(serde_json::to_string(&Modality::ALL)?, r#"["2d","3d"]"#);
    assert_eq!(serde_json::from_str::<Vec<Modality>>(r#"["3d","2d"]"#)?, [Modality::Volume3d, Modality::Image2d]);
    for m in Modality::ALL {
        assert_eq!(serde_json::from_str::<Modality>(&serde_json::to_string(&m)?)?, m);
    }
    // The variant names and the model's tags are not accepted in files.
    assert!(serde_json::from_str::<Modality>(r#""Image2d""#).is_err());
    assert!(serde_json::from_str::<Modality>(r#""3D""#).is_err());
    Ok(())
}

#[test]
fn of_input_reads_the_rank() -> candle::Result<()> {
    let dev = Device::Cpu;
    assert_eq!(Modality::of_input(&Tensor::zeros((2, 3, 8, 8), candle::DType::F32, &dev)?)?, Modality::Image2d);
    assert_eq!(Modality::of_input(&Tensor::zeros((2, 1, 4, 8, 8), candle::DType::F32, &dev)?)?, Modality::Volume3d);
    for shape in [vec![3usize, 8, 8], vec![1, 1, 1, 4, 8, 8], vec![]] {
        let x = Tensor::zeros(shape.as_slice(), candle::DType::F32, &dev)?;
        let e = Modality::of_input(&x).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains(&format!("got rank {}", shape.len())) && e.contains(&format!("{shape:?}")), "{e}");
    }
    Ok(())
}

#[test]
fn kernels_and_paths() {
    assert_eq!(Modality::Image2d.kernel_shape(8, 3, 7), [8, 3, 7, 7]);
    assert_eq!(Modality::Volume3d.kernel_shape(8, 1, 3), [8, 1, 3, 3, 3]);
    assert_eq!((Modality::Image2d.kernel_volume(3), Modality::Volume3d.kernel_volume(3)), (9, 27));
    assert_eq!((Modality::of_spatial_dims(2), Modality::of_spatial_dims(3), Modality::of_spatial_dims(1)), (Some(Modality::Image2d), Some(Modality::Volume3d), None));
    assert_eq!(Modality::from_path(Path::new("/d/CASE.NII.GZ")), Modality::Volume3d);
    assert_eq!(Modality::from_path(Path::new("v.nii")), Modality::Volume3d);
    assert_eq!(Modality::from_path(Path::new("x.png")), Modality::Image2d);
    assert_eq!(Modality::from_path(Path::new("nii.gz/x.jpg")), Modality::Image2d);
}
