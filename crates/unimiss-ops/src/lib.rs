//! Tensor operators that candle 0.11 lacks, with backward passes.
