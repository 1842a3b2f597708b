//! Integration tests of unimiss-ssl (one binary).

mod common;
mod optim;
mod parity;
mod tensorboard;
mod train;
