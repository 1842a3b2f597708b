//! Integration tests of unimiss-ssl (one binary).

mod anticollapse;
mod common;
mod guard;
mod monitor;
mod optim;
mod parity;
mod precision;
mod train;
mod trajectory;
