//! Benchmark families, one module each (`ops`, `model`, `data`, `train`, `transfer`).

pub mod data;
pub mod model;
pub mod ops;
pub mod train;
pub mod transfer;
