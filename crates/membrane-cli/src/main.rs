//! membrane CLI
fn main() {}
