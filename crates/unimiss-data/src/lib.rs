//! unimiss-data (being built).
