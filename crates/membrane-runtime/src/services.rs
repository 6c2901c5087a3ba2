//! Standard host services.

pub mod kv;
