//! State that outlives a call: a counter and a list kept in the module's globals.

use std::cell::RefCell;

use membrane_guest::{Error, export};

thread_local! {
    static COUNTER: RefCell<u64> = const { RefCell::new(0) };
    static NOTES: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// Adds `n` to the counter and returns the new value.
#[export]
pub fn add(n: u64) -> Result<u64, Error> {
    COUNTER.with(|c| {
        let mut c = c.borrow_mut();
        *c = c.checked_add(n).ok_or("counter overflow")?;
        Ok(*c)
    })
}

/// Stores a note; returns how many are stored.
#[export]
pub fn remember(note: String) -> Result<usize, Error> {
    NOTES.with(|n| {
        let mut n = n.borrow_mut();
        n.push(note);
        Ok(n.len())
    })
}

/// Returns every stored note.
#[export]
pub fn recall() -> Result<Vec<String>, Error> {
    NOTES.with(|n| Ok(n.borrow().clone()))
}

/// Forgets every note; returns how many there were.
#[export]
pub fn forget() -> Result<usize, Error> {
    NOTES.with(|n| Ok(std::mem::take(&mut *n.borrow_mut()).len()))
}
