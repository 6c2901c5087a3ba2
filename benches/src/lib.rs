//! bench crate
