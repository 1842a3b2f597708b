//! unimiss-tasks (being built).
