//! Last stage of the pipeline: renders word counts as text.

use membrane_guest::{Error, export};

/// One line per word, `word: count`, in the order given, after a header naming the
/// request the report was made for (the same id along the whole pipeline).
#[export]
pub fn render(counts: Vec<(String, u32)>) -> Result<String, Error> {
    let ctx = membrane_guest::context()?;
    let total: u32 = counts.iter().map(|(_, n)| n).sum();
    let mut text = format!(
        "{total} words, {} distinct (request {}, depth {}, called by {})\n",
        counts.len(),
        ctx.request_id,
        ctx.depth,
        ctx.caller.as_deref().unwrap_or("the host"),
    );
    for (word, n) in counts {
        text.push_str(&format!("{word}: {n}\n"));
    }
    Ok(text)
}
