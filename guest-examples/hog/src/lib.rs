//! Grows its memory without end: stopped by the host's memory limit.

use membrane_guest::{Error, ErrorCode, export};

/// Allocates 1 MiB blocks until the allocator aborts.
#[export]
pub fn hog() -> Result<u64, Error> {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    loop {
        blocks.push(vec![1u8; 1 << 20]);
        std::hint::black_box(&blocks);
    }
}

/// Allocates 1 MiB blocks with `try_reserve` and reports how many fitted, gracefully.
#[export]
pub fn try_hog() -> Result<u64, Error> {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut block = Vec::new();
        if block.try_reserve_exact(1 << 20).is_err() {
            return Err(Error::new(
                ErrorCode::OUT_OF_MEMORY,
                format!("stopped after {} MiB", blocks.len()),
            ));
        }
        block.resize(1 << 20, 1);
        blocks.push(block);
    }
}
