//! Data-integrity rules for clinical schemas: validators for CHECK constraints and domains
//! (`validators.rs`, pure Rust; the domains in `sql/constraints.sql`), the check that a
//! `where_clause` is one expression (`expression.rs`), and the helpers that add one rule each
//! (`sql/constraint_helpers.sql`, with `hard_delete()` here).

pub mod counter;
pub mod deltas;
pub mod expression;
pub mod validators;

use crate::v1::{varlena_arg, V1};
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::cell::RefCell;
use std::collections::HashSet;

pgrx::extension_sql_file!("../../sql/constraints.sql", name = "constraints", requires = [is_valid_timezone]);

/// Declares a STRICT text → boolean validator as a plain version-1 C function (crate::v1): the
/// validators run inside CHECK constraints on every row written, so they read the text in place,
/// without a copy or a UTF-8 conversion.
macro_rules! text_validator {
    ($finfo:ident, $name:ident, $check:path) => {
        #[unsafe(no_mangle)]
        pub extern "C" fn $finfo() -> &'static pg_sys::Pg_finfo_record {
            &V1
        }

        #[unsafe(no_mangle)]
        #[pg_guard]
        pub unsafe extern "C-unwind" fn $name(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
            // SAFETY: declared STRICT with one text argument in sql/constraints.sql.
            pg_sys::Datum::from($check(unsafe { varlena_arg(fcinfo, 0) }))
        }
    };
}

text_validator!(pg_finfo_sg_is_valid_npi, sg_is_valid_npi, validators::is_valid_npi);
text_validator!(pg_finfo_sg_is_valid_dea, sg_is_valid_dea, validators::is_valid_dea);
text_validator!(pg_finfo_sg_is_valid_e164, sg_is_valid_e164, validators::is_valid_e164);
text_validator!(pg_finfo_sg_is_valid_email, sg_is_valid_email, validators::is_valid_email);
text_validator!(pg_finfo_sg_is_valid_us_state, sg_is_valid_us_state, validators::is_valid_us_state);

thread_local! {
    /// The server's time zone names, read once per backend from pg_timezone_names (which scans
    /// the time zone directory: milliseconds, far too slow per row).
    static TIMEZONES: RefCell<Option<HashSet<String>>> = const { RefCell::new(None) };
}

/// Whether `value` is a time zone name this server knows (pg_timezone_names), such as
/// America/New_York or UTC. Case-sensitive, as the names are. STABLE: the list is read once per
/// backend and would change only with the server's time zone data.
#[pg_extern(stable, strict, parallel_safe)]
fn is_valid_timezone(value: &str) -> bool {
    let loaded = TIMEZONES.with_borrow(|names| names.is_some());
    if !loaded {
        let names: HashSet<String> = Spi::connect(|client| {
            client
                .select("SELECT name FROM pg_catalog.pg_timezone_names", None, &[])
                .map(|rows| rows.filter_map(|row| row.get::<String>(1).ok().flatten()).collect())
                .unwrap_or_else(|e| pgrx::error!("pg_safeguard: reading pg_timezone_names failed: {e}"))
        });
        TIMEZONES.set(Some(names));
    }
    TIMEZONES.with_borrow(|names| names.as_ref().is_some_and(|names| names.contains(value)))
}

pgrx::extension_sql_file!(
    "../../sql/constraint_helpers.sql",
    name = "constraint_helpers",
    requires = [
        "tenancy",
        "constraints",
        expression::_single_expression,
        expression::_qualified_expression,
        counter::_count_row,
        counter::_count_flush,
        _hard_delete_in_progress
    ]
);

thread_local! {
    /// Raised only by hard_delete() while its DELETE runs: the soft-delete triggers let those
    /// rows go. Not reachable from SQL.
    static HARD_DELETING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}


/// Read by the soft-delete triggers: whether safeguard.hard_delete() is deleting right now.
#[pg_extern(volatile, parallel_unsafe)]
fn _hard_delete_in_progress() -> bool {
    HARD_DELETING.get()
}

/// Really deletes the rows of a soft-delete table that match `where_clause`, for members of the
/// role named when soft delete was enabled. Runs with the caller's privileges (DELETE, row-level
/// security). Returns how many rows it deleted.
#[pg_extern(sql = false)]
fn hard_delete(tbl: pg_sys::Oid, where_clause: &str) -> i64 {
    use crate::error::SafeguardError;
    use pgrx::PgSqlErrorCode;
    let (role, allowed, statement) = Spi::connect(|client| {
        let rule = client
            .select(
                "SELECT r.options ->> 'hard_delete_role',
                        coalesce(pg_catalog.pg_has_role(current_user, r.options ->> 'hard_delete_role', 'MEMBER'), false),
                        pg_catalog.format('DELETE FROM %s WHERE %s', r.tbl, safeguard._rule_where(r.tbl, $2))
                   FROM safeguard.rule_registry r WHERE r.tbl = $1 AND r.kind = 'soft_delete'",
                Some(1),
                &[tbl.into(), where_clause.into()],
            )
            .unwrap_or_else(|e| pgrx::error!("pg_safeguard: reading the rule registry failed: {e}"));
        if rule.is_empty() {
            SafeguardError::new(
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                "the table has no soft delete",
            )
            .with_hint("Use DELETE: hard_delete() is for tables set up with safeguard.enable_soft_delete().")
            .report()
        }
        let row = rule.first();
        (
            row.get::<String>(1).ok().flatten(),
            row.get::<bool>(2).ok().flatten().unwrap_or(false),
            row.get::<String>(3).ok().flatten().unwrap_or_default(),
        )
    });
    if role.is_none() || !allowed {
        SafeguardError::new(PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE, "permission denied for hard_delete")
            .with_detail(match role {
                Some(_) => "Hard deletes of this table are for members of the role named in enable_soft_delete().",
                None => "No role was named for hard deletes when soft delete was enabled on this table.",
            })
            .with_hint("enable_soft_delete(tbl, col, hard_delete_role => ...) names the role.")
            .report()
    }
    let _deleting = crate::scoped_flag::Raised::raise(&HARD_DELETING);
    Spi::connect_mut(|client| {
        client
            .update(statement.as_str(), None, &[])
            .map(|deleted| deleted.len() as i64)
            .unwrap_or_else(|e| pgrx::error!("pg_safeguard: hard delete failed: {e}"))
    })
}

/// The previous emit_log_hook, called after ours.
static mut PREVIOUS_EMIT_LOG_HOOK: pg_sys::emit_log_hook_type = None;

/// Installs the hook that keeps row values out of the messages of our rules; from `_PG_init`.
pub fn init() {
    counter::init();
    // SAFETY: hooks are installed once per process, while it loads the library.
    unsafe {
        PREVIOUS_EMIT_LOG_HOOK = pg_sys::emit_log_hook;
        pg_sys::emit_log_hook = Some(hide_values_of_rule_violations);
    }
}

/// PostgreSQL reports a unique, exclusion or CHECK violation with the offending key or the whole
/// row in DETAIL ("Key (npi)=(1234567893) already exists", "Failing row contains (...)"), to the
/// client and to the server log. For the rules the helpers create (named sg_...), the message
/// already names the rule; the values, which may be PHI, are removed. Active in every backend
/// that has loaded the library: with `shared_preload_libraries = 'pg_safeguard'`, in all of them.
#[pg_guard]
unsafe extern "C-unwind" fn hide_values_of_rule_violations(edata: *mut pg_sys::ErrorData) {
    // SAFETY: PostgreSQL passes the error being reported; we only read it and clear two pointers
    // into its own memory context.
    unsafe {
        if let Some(data) = edata.as_mut() {
            let violation = [
                pgrx::PgSqlErrorCode::ERRCODE_UNIQUE_VIOLATION,
                pgrx::PgSqlErrorCode::ERRCODE_EXCLUSION_VIOLATION,
                pgrx::PgSqlErrorCode::ERRCODE_CHECK_VIOLATION,
            ]
            .iter()
            .any(|&code| data.sqlerrcode == code as i32);
            let ours = !data.constraint_name.is_null()
                && std::ffi::CStr::from_ptr(data.constraint_name).to_bytes().starts_with(b"sg_");
            if data.elevel >= pgrx::PgLogLevel::ERROR as i32 && violation && ours {
                data.detail = std::ptr::null_mut();
                data.detail_log = std::ptr::null_mut();
            }
        }
        if let Some(previous) = PREVIOUS_EMIT_LOG_HOOK {
            previous(edata);
        }
    }
}
