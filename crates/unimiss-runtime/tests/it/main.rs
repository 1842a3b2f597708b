//! Integration tests of the runtime.

mod runloop;
mod tensorboard;
