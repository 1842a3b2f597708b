//! Integration tests of unimiss-model (one binary).

mod checkpoint;
mod common;
mod grad_flow;
mod params;
mod parity;
mod parity_grads;
mod pth_bounds;
mod pth_corpus;
