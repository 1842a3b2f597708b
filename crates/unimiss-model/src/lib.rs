//! unimiss-model (being built).
