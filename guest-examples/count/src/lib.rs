//! Second stage of the pipeline: counts words and hands the counts to `report`.

use std::collections::BTreeMap;

use membrane_guest::{Error, export};

/// Counts each distinct word; returns the report `report` renders of the counts,
/// most frequent first (ties by word).
#[export]
pub fn tally(words: Vec<String>) -> Result<String, Error> {
    let mut counts: BTreeMap<String, u32> = BTreeMap::new();
    for word in words {
        *counts.entry(word).or_default() += 1;
    }
    let mut counts: Vec<(String, u32)> = counts.into_iter().collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    membrane_guest::call("report", "render", &counts)
}
