//! Whether a setting's current value ends with the current transaction. An application's own
//! tenant setting adopted with `safeguard.tenant_setting` is trusted only then: a value written
//! for the session (`SET`, `set_config(..., false)`, `ALTER ROLE ... SET`) stays on the
//! connection after COMMIT, and a pool (PgBouncer in transaction mode, any application pool) then
//! hands it to the next request. The extension's own context settings need no such check: only
//! `set_context()` writes them, transaction-locally.

use pgrx::pg_sys;
use std::ffi::CStr;

/// What the top of a setting's GUC stack says about its current value; `None`: no stack entry,
/// the value was not written in this transaction at all.
pub fn ends_with_transaction(top_of_stack: Option<pg_sys::GucStackState::Type>) -> bool {
    use pg_sys::GucStackState::{GUC_LOCAL, GUC_SAVE, GUC_SET, GUC_SET_LOCAL};
    match top_of_stack {
        // SET LOCAL / set_config(..., true), possibly over a session-level SET it masks, or a
        // function's SET clause: restored when the transaction (or the function) ends.
        Some(GUC_LOCAL) | Some(GUC_SET_LOCAL) | Some(GUC_SAVE) => true,
        // SET / set_config(..., false) in this transaction: survives the COMMIT.
        Some(GUC_SET) => false,
        // Left by an earlier transaction, or a default (ALTER ROLE/DATABASE SET, postgresql.conf).
        None => false,
        Some(_) => false,
    }
}

/// Order of setting names in PostgreSQL's sorted list: ASCII case-insensitive (guc.c).
#[cfg(any(feature = "pg15", test))]
fn compare_setting_names(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    a.iter()
        .map(u8::to_ascii_lowercase)
        .cmp(b.iter().map(u8::to_ascii_lowercase))
}

/// The GUC record of `name`, or NULL.
#[cfg(feature = "pg15")]
unsafe fn find_setting(name: &CStr) -> *mut pg_sys::config_generic {
    // PostgreSQL 15 keeps no exported lookup, but its array of settings is sorted by name.
    let count = pg_sys::GetNumConfigOptions() as usize;
    let variables = pg_sys::get_guc_variables();
    if variables.is_null() || count == 0 {
        return std::ptr::null_mut();
    }
    let settings = std::slice::from_raw_parts(variables, count);
    settings
        .binary_search_by(|&setting| {
            compare_setting_names(CStr::from_ptr((*setting).name).to_bytes(), name.to_bytes())
        })
        .map_or(std::ptr::null_mut(), |index| settings[index])
}

#[cfg(not(feature = "pg15"))]
unsafe fn find_setting(name: &CStr) -> *mut pg_sys::config_generic {
    pg_sys::find_option(name.as_ptr(), false, true, pgrx::PgLogLevel::ERROR as i32)
}

/// True when `name`'s current value was written in this transaction and ends with it. In a
/// parallel worker the settings are copies of the leader's, without their history: true there
/// (the leader evaluates the policies' `(SELECT safeguard.current_tenant())`).
pub fn value_ends_with_transaction(name: &CStr) -> bool {
    // SAFETY: read-only access to the GUC machinery's records, in the backend's own thread.
    unsafe {
        if pg_sys::ParallelWorkerNumber >= 0 {
            return true;
        }
        let setting = find_setting(name);
        if setting.is_null() {
            return false;
        }
        let stack = (*setting).stack;
        ends_with_transaction((!stack.is_null()).then(|| (*stack).state))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pg_sys::GucStackState::{GUC_LOCAL, GUC_SAVE, GUC_SET, GUC_SET_LOCAL};

    #[test]
    fn only_transaction_scoped_values_count() {
        assert!(ends_with_transaction(Some(GUC_LOCAL)));
        assert!(ends_with_transaction(Some(GUC_SET_LOCAL)));
        assert!(ends_with_transaction(Some(GUC_SAVE)));
        assert!(!ends_with_transaction(Some(GUC_SET)));
        assert!(!ends_with_transaction(None));
    }

    #[test]
    fn names_compare_like_postgresql() {
        use std::cmp::Ordering::*;
        assert_eq!(compare_setting_names(b"App.Tenant", b"app.tenant"), Equal);
        assert_eq!(compare_setting_names(b"app.a", b"app.b"), Less);
        assert_eq!(compare_setting_names(b"app_x", b"app.x"), Greater);
        assert_eq!(compare_setting_names(b"app", b"app.x"), Less);
    }
}
