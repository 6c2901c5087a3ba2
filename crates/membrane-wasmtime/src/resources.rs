//! What a module's instances will need, read from its wasm bytes before compiling:
//! memories and tables, checked against the engine's limits at load.
//!
//! Checked here rather than after compiling so that both instance allocators give the
//! same answer at the same step: the pooling allocator refuses a module that does not
//! fit its slots while compiling it, with a message that says nothing of the limit,
//! and the on-demand allocator would only refuse it at instantiation.

use wasmparser::{Parser, Payload};

use membrane_runtime::{ErrorKind, LimitKind, Result};

/// Linear memories an instance may have: the one the ABI exports.
pub(crate) const MAX_MEMORIES: u32 = 1;

/// Tables an instance may have: Rust guests have one; a few more are harmless and
/// bounded.
pub(crate) const MAX_TABLES: u32 = 4;

/// What one component instance's store may hold: its core instances (a Rust component
/// built by wit-bindgen or for wasm32-wasip2 has a few, its shims included), their
/// memories (each under `max_memory`: a component adapted from WASI p1 has two) and
/// tables.
#[cfg(feature = "component")]
pub(crate) mod component {
    /// Core instances.
    pub(crate) const MAX_CORE_INSTANCES: usize = 32;
    /// Linear memories.
    pub(crate) const MAX_MEMORIES: usize = 2;
    /// Tables.
    pub(crate) const MAX_TABLES: usize = 16;
}

/// Refuses a module whose defined memories or tables exceed the engine's limits:
/// more than [`MAX_MEMORIES`] memories or [`MAX_TABLES`] tables, an initial memory
/// larger than `max_memory`, an initial table longer than `max_table_elements`.
///
/// Bytes that do not parse are left to the compiler, which reports them as an invalid
/// module with its own message.
pub(crate) fn check(wasm: &[u8], max_memory: usize, max_table_elements: usize) -> Result<()> {
    let (mut memories, mut tables) = (0u32, 0u32);
    for payload in Parser::new(0).parse_all(wasm) {
        let Ok(payload) = payload else {
            return Ok(());
        };
        match payload {
            Payload::MemorySection(reader) => {
                for memory in reader {
                    let Ok(memory) = memory else { return Ok(()) };
                    memories = memories.saturating_add(1);
                    let bytes = memory
                        .initial
                        .checked_shl(memory.page_size_log2())
                        .unwrap_or(u64::MAX);
                    if bytes > max_memory as u64 {
                        return Err(
                            ErrorKind::Limit(LimitKind::Memory { limit: max_memory }).into()
                        );
                    }
                }
            }
            Payload::TableSection(reader) => {
                for table in reader {
                    let Ok(table) = table else { return Ok(()) };
                    tables = tables.saturating_add(1);
                    if table.ty.initial > max_table_elements as u64 {
                        return Err(ErrorKind::Limit(LimitKind::Table {
                            limit: max_table_elements,
                        })
                        .into());
                    }
                }
            }
            // Memories and tables are declared before the code: nothing more to read.
            Payload::CodeSectionStart { .. } => break,
            _ => {}
        }
    }
    if memories > MAX_MEMORIES {
        return Err(ErrorKind::Limit(LimitKind::Memories {
            count: memories,
            limit: MAX_MEMORIES,
        })
        .into());
    }
    if tables > MAX_TABLES {
        return Err(ErrorKind::Limit(LimitKind::Tables {
            count: tables,
            limit: MAX_TABLES,
        })
        .into());
    }
    Ok(())
}
