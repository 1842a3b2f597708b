//! Integration tests of unimiss-ops: each op against a direct-loop f64 reference, each backward
//! against central finite differences, and bad arguments.

mod common;
mod attention;
mod composed;
mod conv;
#[cfg(feature = "cuda")]
mod cuda;
mod gelu;
mod interp;
mod modality;
mod linear;
mod norm;
mod update;
mod weight_norm;
