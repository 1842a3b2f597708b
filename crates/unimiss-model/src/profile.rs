//! The per-operation timers of `unimiss bench model|train` (defined in [`unimiss_ops::profile`],
//! so that the operators' backward passes and the training step's phases share one table).

pub use unimiss_ops::profile::{enable, reset, snapshot};
pub(crate) use unimiss_ops::profile::time;
