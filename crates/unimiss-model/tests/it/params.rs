//! Parameter counts and key tables (reference §1.8).

use candle::Result;
use unimiss_model::checkpoint::{ParamCount, expected_shapes};
use unimiss_model::{HeadConfig, MitConfig};

use crate::common::fixture_config;

#[test]
fn tiny_counts_at_official_sizes() -> Result<()> {
    let shapes = expected_shapes(&MitConfig::tiny(), Some(&HeadConfig::new(48, 65536)))?;
    let c = ParamCount::of(&shapes);
    assert_eq!(c.backbone(), 20_380_336);
    assert_eq!(c.encoder, 13_859_392);
    assert_eq!(c.backbone() - c.encoder, 6_520_944);
    assert_eq!(c.planar_only, 4_074_608);
    assert_eq!(c.volumetric_only, 10_778_864);
    assert_eq!(c.shared(), 5_526_864);
    assert_eq!(c.head, 21_664_000);
    assert_eq!(shapes.len(), 207);
    Ok(())
}

#[test]
fn small_counts_at_official_sizes() -> Result<()> {
    let shapes = expected_shapes(&MitConfig::small(), Some(&HeadConfig::new(48, 65536)))?;
    let c = ParamCount::of(&shapes);
    assert_eq!(c.backbone(), 43_942_944);
    assert_eq!(c.encoder, 28_523_888);
    assert_eq!(c.backbone() - c.encoder, 15_419_056);
    assert_eq!(c.planar_only, 6_946_944);
    assert_eq!(c.volumetric_only, 20_138_240);
    assert_eq!(c.shared(), 16_857_760);
    assert_eq!(c.head, 21_664_000);
    assert_eq!(shapes.len(), 481);
    // Appendix A: a few rows.
    assert_eq!(shapes["backbone.DecPosEmbed2D2"], [1, 3137, 48]);
    assert_eq!(shapes["backbone.transformer.pos_embed3D1"], [1, 4609, 48]);
    assert_eq!(shapes["backbone.transformer.block3.3.attn.sr3D.weight"], [256, 256, 2, 2, 2]);
    assert_eq!(shapes["backbone.DecEmbed3D0.proj.weight"], [512, 256, 2, 2, 2]);
    assert_eq!(shapes["head.last_layer.weight_g"], [65536, 1]);
    assert!(!shapes.contains_key("backbone.transformer.block4.0.attn.sr2D.weight"));
    Ok(())
}

#[test]
fn fixture_build_has_19_453_616_backbone_parameters() -> Result<()> {
    let shapes = expected_shapes(&fixture_config(), Some(&HeadConfig::new(48, 1024)))?;
    let c = ParamCount::of(&shapes);
    assert_eq!(c.backbone(), 19_453_616);
    assert_eq!(c.head, 5_084_416);
    Ok(())
}

#[test]
fn invalid_sizes_are_rejected() {
    for cfg in [
        MitConfig::tiny().with_img_size_2d(48),
        MitConfig::tiny().with_img_size_2d(32),
        MitConfig::tiny().with_img_size_3d([8, 64, 64]),
        MitConfig::tiny().with_img_size_3d([16, 48, 48]),
        MitConfig::tiny().with_img_size_3d([16, 64, 96]),
        MitConfig::tiny().with_drop_path(1.0),
    ] {
        assert!(cfg.validate().is_err(), "{cfg:?} accepted");
    }
    assert!(MitConfig::small().validate().is_ok());
}
