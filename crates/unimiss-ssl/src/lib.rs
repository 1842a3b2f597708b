//! unimiss-ssl (being built).
