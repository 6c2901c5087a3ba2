//! First stage of a three-module pipeline (`tokenize` → `count` → `report`): splits a
//! text into lower-case words and hands them to `count`, which hands its tally to
//! `report`; the rendered report comes back down the chain.

use membrane_guest::{Error, export};

/// Splits `text` into words (runs of letters, digits and apostrophes, lower-cased) and
/// returns the report the rest of the pipeline makes of them.
#[export]
pub fn process(text: String) -> Result<String, Error> {
    let words: Vec<String> = text
        .split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    membrane_guest::call("count", "tally", &words)
}
