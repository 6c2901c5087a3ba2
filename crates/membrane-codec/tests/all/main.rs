//! Integration tests of `membrane-codec`: one test binary, one module per topic.

mod golden;
mod prop;
mod reject;
mod roundtrip;
mod util;
