//! The UniMiSS MiT backbone (tiny, small; 2D and 3D) and its projection head, numerically equal
//! to the official PyTorch implementation, with official checkpoint loading.
//!
//! - [`Mit`]: encoder + U-like decoder. The input's rank picks the modality once
//!   ([`Modality::Image2d`] for `[B, 3, H, W]`, [`Modality::Volume3d`] for `[B, 1, D, H, W]`;
//!   the one 2D/3D type of the workspace, defined in `unimiss-ops` and re-exported here);
//!   the transformer blocks and class-token projections are shared, the patch embeddings,
//!   spatial-reduction convolutions and positional tables exist per modality.
//! - [`Head`]: DINO projection head; [`MitWithHead`]: the official `ModuleWrapper`.
//! - [`Conv`], [`ConvBlock`], [`UpConv`]: the convolution layers of the decoder, for task heads.
//! - [`checkpoint`]: `.pth` (teacher/student) and safetensors loading with name/shape checks.
//! - [`MitConfig::tiny`] / [`MitConfig::small`] with the official defaults (224, 16×96×96, no
//!   drop-path), sizes overridable; positional tables are resized exactly as upstream for other
//!   input sizes.
//!
//! Parameter names are the official state_dict keys (`backbone.transformer.patch_embed2D0.conv.weight`,
//! `head.last_layer.weight_v`, …), so weights move both ways without renaming.
//!
//! ```
//! use candle::{DType, Device, Tensor};
//! use candle_nn::{VarBuilder, VarMap};
//! use unimiss_model::{HeadConfig, MitConfig, MitWithHead};
//!
//! let dev = Device::Cpu;
//! let cfg = MitConfig::tiny().with_img_size_2d(64).with_img_size_3d([16, 64, 64]);
//! let vm = VarMap::new();
//! let model = MitWithHead::new(&cfg, &HeadConfig::new(48, 128), VarBuilder::from_varmap(&vm, DType::F32, &dev))?;
//!
//! let image = Tensor::rand(0f32, 1.0, (2, 3, 64, 64), &dev)?;
//! assert_eq!(model.backbone.forward(&image)?.dims(), [2, 48]);
//! // A different (square) size resizes the 2D positional tables as the official code does.
//! let larger = Tensor::rand(0f32, 1.0, (1, 3, 96, 96), &dev)?;
//! assert_eq!(model.forward(&larger)?.dims(), [1, 128]);
//!
//! // Official parameter names, e.g. for a checkpoint round trip.
//! let shapes = unimiss_model::checkpoint::expected_shapes(&cfg, Some(&HeadConfig::new(48, 128)))?;
//! assert_eq!(shapes["head.last_layer.weight_v"], [128, 256]);
//! # Ok::<(), candle::Error>(())
//! ```

mod block;
pub mod checkpoint;
mod config;
mod encoder;
mod head;
pub mod init;
mod mit;
mod nn;
mod pos_embed;
pub mod profile;
mod spatial;
mod stage;

pub use config::{Arch, HeadConfig, MitConfig, STEM_DIM, StageConfig};
pub use encoder::EncoderOutput;
pub use head::{Head, MitWithHead, is_frozen};
pub use init::SeededVarMap;
pub use mit::{DenseOutput, Mit};
pub use nn::{Conv, ConvBlock, ConvSpec, UpConv};
pub use spatial::Grid;
pub use unimiss_ops::{Modality, PerModality};
