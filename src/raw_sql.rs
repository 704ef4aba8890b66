//! PostgreSQL's own raw parser, to check a piece of SQL text before anything runs it.

use pgrx::pg_sys;
use std::ffi::CString;

/// The raw parse tree of `sql` when it is exactly one statement (allocated in the current memory
/// context); `None` when it holds none or several, or a NUL byte. Text that does not parse raises
/// PostgreSQL's own syntax error (42601).
pub(crate) fn single_statement(sql: &str) -> Option<*mut pg_sys::Node> {
    let sql = CString::new(sql).ok()?;
    // SAFETY: raw_parser reads a NUL-terminated string and returns a List of RawStmt nodes (or
    // raises a syntax error); only the list and its first cell are read here.
    unsafe {
        let statements = pg_sys::raw_parser(sql.as_ptr(), pg_sys::RawParseMode::RAW_PARSE_DEFAULT);
        if statements.is_null() || (*statements).length != 1 {
            return None;
        }
        let raw = (*(*statements).elements).ptr_value as *mut pg_sys::RawStmt;
        if raw.is_null() || (*raw).stmt.is_null() {
            return None;
        }
        Some((*raw).stmt)
    }
}
