//! codec benches
fn main() {}
