//! Integration tests of unimiss-data (one binary, see style anchors W8).
#![allow(clippy::unwrap_used)]

mod augment;
mod bad_input;
mod common;
mod labelled;
mod fuzz_corpus;
mod loader;
mod manifest;
mod nifti;
mod preflight;
mod subvolumes;
