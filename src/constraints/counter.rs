//! The triggers of `safeguard.maintain_count()` (sql/constraint_helpers.sql creates them).
//!
//! Row triggers (`_count_row`, AFTER INSERT / UPDATE / DELETE FOR EACH ROW, with WHEN conditions
//! that say whether the row is counted before and after) add +1 or -1 for the parent key into
//! this backend's ledger (`deltas.rs`); the statement trigger (`_count_flush`, AFTER INSERT OR
//! UPDATE OR DELETE FOR EACH STATEMENT) fires after all of them and applies the net change per
//! parent, in key order, one prepared UPDATE each. Against the transition tables of the first
//! version this saves building and scanning a tuplestore per statement (measured in
//! docs/benchmarks.md) and keeps COPY's multi-row inserts.
//!
//! A transaction or subtransaction that rolls back drops its pending deltas (callbacks
//! registered in `_PG_init`); a transaction that would commit with deltas still pending (the
//! statement trigger disabled by hand while the row triggers still fire) is refused instead of
//! committing a wrong counter.

use super::deltas::{KeyType, Ledger, NetChange};
use crate::audit::statement::quote_ident;
use crate::error::SafeguardError;
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::spi::OwnedPreparedStatement;
use pgrx::{PgOid, PgSqlErrorCode};
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::CStr;
use std::rc::Rc;

thread_local! {
    static LEDGER: RefCell<Ledger> = RefCell::new(Ledger::default());
    /// The prepared UPDATE of each counter, by its text and the type of the key it is given.
    /// Shared out (Rc) so that no borrow is held while an UPDATE runs: it may fire the parent's
    /// own counter triggers, which come back here.
    static UPDATES: RefCell<HashMap<(String, u32), Rc<OwnedPreparedStatement>>> = RefCell::new(HashMap::new());
    /// The row triggers' arguments, read once per trigger (by OID) and backend.
    static ROW_TRIGGERS: RefCell<HashMap<pg_sys::Oid, Rc<RowTrigger>>> = RefCell::new(HashMap::new());
}

/// The UPDATE that applies a net change to one parent. Identifiers quoted here; operators
/// spelled with their schema, so the caller's search_path cannot substitute its own `+` or `=`.
fn update_statement(schema: &str, table: &str, counter: &str, key: &str) -> String {
    format!(
        "UPDATE {}.{} p SET {} = p.{} OPERATOR(pg_catalog.+) $2 WHERE p.{} OPERATOR(pg_catalog.=) $1",
        quote_ident(schema),
        quote_ident(table),
        quote_ident(counter),
        quote_ident(counter),
        quote_ident(key)
    )
}

fn misused_trigger() -> ! {
    SafeguardError::new(
        PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        "the counter trigger is attached in a way it does not support",
    )
    .with_hint("Create counters with safeguard.maintain_count(), not by hand.")
    .report()
}

/// What a row trigger's arguments say, read once per backend and trigger: they are the same on
/// every row, and reading them (seven strings) and composing the counter's UPDATE cost more
/// than the rest of the trigger.
struct RowTrigger {
    /// The arguments as they were read: compared on every call (no allocation), since CREATE OR
    /// REPLACE TRIGGER can give a trigger other arguments under the same OID.
    args: Vec<String>,
    counter_id: String,
    fk_column: String,
    delta: i64,
    reads_new_row: bool,
}

impl RowTrigger {
    /// Arguments (parent schema, parent table, counter column, parent key column, child column
    /// holding the key, +1 or -1, new or old: which version of the row to read the key from).
    fn parse(args: Vec<String>) -> Option<Self> {
        let [schema, table, counter, key, fk, sign, version] = args.as_slice() else { return None };
        Some(Self {
            counter_id: update_statement(schema, table, counter, key),
            fk_column: fk.clone(),
            delta: match sign.as_str() {
                "1" => 1,
                "-1" => -1,
                _ => return None,
            },
            reads_new_row: match version.as_str() {
                "new" => true,
                "old" => false,
                _ => return None,
            },
            args,
        })
    }

    /// Whether `trigger` still has the arguments this was read from.
    ///
    /// SAFETY: `trigger` is the pg_trigger entry PostgreSQL handed the trigger function.
    unsafe fn matches(&self, trigger: &pg_sys::Trigger) -> bool {
        if trigger.tgnargs as usize != self.args.len() {
            return false;
        }
        (0..self.args.len()).all(|i| unsafe {
            CStr::from_ptr(*trigger.tgargs.add(i)).to_bytes() == self.args[i].as_bytes()
        })
    }
}

/// Row trigger: AFTER INSERT, UPDATE or DELETE FOR EACH ROW, arguments as `RowTrigger::parse`
/// reads them.
#[pg_trigger]
fn _count_row<'a>(trigger: &'a PgTrigger<'a>) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, PgTriggerError> {
    if !matches!(trigger.when()?, PgTriggerWhen::After) || !matches!(trigger.level(), PgTriggerLevel::Row) {
        misused_trigger();
    }
    let data = trigger.trigger_data();
    // SAFETY: PostgreSQL hands a trigger its pg_trigger entry.
    let entry = unsafe { &*data.tg_trigger };
    let cached = ROW_TRIGGERS.with_borrow(|triggers| triggers.get(&entry.tgoid).cloned());
    // SAFETY: as above.
    let parsed = match cached.filter(|parsed| unsafe { parsed.matches(entry) }) {
        Some(parsed) => parsed,
        None => {
            let trigger_oid = entry.tgoid;
            let parsed = Rc::new(RowTrigger::parse(trigger.extra_args()?).unwrap_or_else(|| misused_trigger()));
            ROW_TRIGGERS.with_borrow_mut(|triggers| triggers.insert(trigger_oid, Rc::clone(&parsed)));
            parsed
        }
    };
    let tuple = match (parsed.reads_new_row, trigger.op()?) {
        (true, PgTriggerOperation::Update) => data.tg_newtuple,
        (true, PgTriggerOperation::Insert) | (false, PgTriggerOperation::Update | PgTriggerOperation::Delete) => {
            data.tg_trigtuple
        }
        _ => misused_trigger(),
    };
    // SAFETY: a row trigger's relation and tuple; attribute numbers come from its descriptor.
    unsafe {
        let desc = (*data.tg_relation).rd_att;
        let attributes = crate::tupdesc::attributes(desc);
        let Some(position) = attributes.iter().position(|attr| {
            !attr.attisdropped && CStr::from_ptr(attr.attname.data.as_ptr()).to_bytes() == parsed.fk_column.as_bytes()
        }) else {
            misused_trigger()
        };
        let attr = &attributes[position];
        let mut is_null = false;
        let datum = pg_sys::heap_getattr(tuple, position as i32 + 1, desc, &mut is_null);
        if is_null {
            return Ok(None); // a child without a parent counts for none
        }
        let key_type = KeyType { oid: attr.atttypid.to_u32(), len: attr.attlen, by_value: attr.attbyval };
        let subxact = pg_sys::GetCurrentSubTransactionId();
        with_key_bytes(datum, key_type, |bytes| {
            LEDGER.with_borrow_mut(|ledger| ledger.add(&parsed.counter_id, key_type, bytes, parsed.delta, subxact))
        });
    }
    Ok(None)
}

/// Statement trigger: AFTER INSERT OR UPDATE OR DELETE FOR EACH STATEMENT, arguments (parent
/// schema, parent table, counter column, parent key column).
#[pg_trigger]
fn _count_flush<'a>(trigger: &'a PgTrigger<'a>) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, PgTriggerError> {
    if !matches!(trigger.when()?, PgTriggerWhen::After) || !matches!(trigger.level(), PgTriggerLevel::Statement) {
        misused_trigger();
    }
    let args = trigger.extra_args()?;
    let [schema, table, counter, key] = args.as_slice() else { misused_trigger() };
    let counter_id = update_statement(schema, table, counter, key);
    let changes = LEDGER.with_borrow_mut(|ledger| ledger.take(&counter_id));
    if changes.is_empty() {
        return Ok(None);
    }
    Spi::connect_mut(|client| {
        for change in changes {
            let type_oid = change.key_type.oid;
            let cache_key = (counter_id.clone(), type_oid);
            let update = match UPDATES.with_borrow(|updates| updates.get(&cache_key).cloned()) {
                Some(update) => update,
                None => {
                    let types = [PgOid::from(pg_sys::Oid::from(type_oid)), PgOid::from(pg_sys::INT8OID)];
                    let prepared = client
                        .prepare_mut(counter_id.as_str(), &types)
                        .unwrap_or_else(|e| pgrx::error!("pg_safeguard: preparing the counter update failed: {e}"))
                        .keep();
                    let prepared = Rc::new(prepared);
                    UPDATES.with_borrow_mut(|updates| updates.insert(cache_key, Rc::clone(&prepared)));
                    prepared
                }
            };
            // SAFETY: the datum is rebuilt from the bytes of a value of this type.
            let key = unsafe { DatumWithOid::new(key_datum(&change), pg_sys::Oid::from(type_oid)) };
            let params = [key, change.delta.into()];
            client
                .update(&*update, None, &params)
                .unwrap_or_else(|e| pgrx::error!("pg_safeguard: updating the counter failed: {e}"));
        }
    });
    Ok(None)
}

/// Calls `f` with the bytes that stand for a key value in the ledger: the Datum word itself for
/// pass-by-value types, the value's bytes for fixed-length ones, the payload of a varlena
/// (detoasted, so that one value always gives the same bytes).
///
/// SAFETY: `datum` is a non-NULL value of the type `key_type` describes.
unsafe fn with_key_bytes<R>(datum: pg_sys::Datum, key_type: KeyType, f: impl FnOnce(&[u8]) -> R) -> R {
    unsafe {
        if key_type.by_value {
            f(&datum.value().to_ne_bytes())
        } else if key_type.len > 0 {
            f(std::slice::from_raw_parts(datum.cast_mut_ptr::<u8>(), key_type.len as usize))
        } else if key_type.len == -1 {
            f(crate::v1::varlena_bytes(datum))
        } else {
            f(CStr::from_ptr(datum.cast_mut_ptr()).to_bytes())
        }
    }
}

/// The Datum a ledger key stands for, in the current memory context.
///
/// SAFETY: `change.key` was made by `key_bytes` for `change.key_type`.
unsafe fn key_datum(change: &NetChange) -> pg_sys::Datum {
    unsafe {
        let bytes = &change.key;
        if change.key_type.by_value {
            let mut word = [0u8; std::mem::size_of::<pg_sys::Datum>()];
            word.copy_from_slice(bytes);
            pg_sys::Datum::from(usize::from_ne_bytes(word))
        } else if change.key_type.len > 0 {
            let copy = pg_sys::palloc(bytes.len()) as *mut u8;
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), copy, bytes.len());
            pg_sys::Datum::from(copy)
        } else if change.key_type.len == -1 {
            let size = pg_sys::VARHDRSZ + bytes.len();
            let value = pg_sys::palloc(size) as *mut pg_sys::varlena;
            pgrx::varlena::set_varsize_4b(value, size as i32);
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), (value as *mut u8).add(pg_sys::VARHDRSZ), bytes.len());
            pg_sys::Datum::from(value)
        } else {
            let copy = pg_sys::palloc0(bytes.len() + 1) as *mut u8;
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), copy, bytes.len());
            pg_sys::Datum::from(copy)
        }
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn on_transaction_event(event: pg_sys::XactEvent::Type, _arg: *mut std::ffi::c_void) {
    use pg_sys::XactEvent::*;
    match event {
        XACT_EVENT_ABORT | XACT_EVENT_PARALLEL_ABORT => LEDGER.with_borrow_mut(Ledger::clear),
        XACT_EVENT_PRE_COMMIT | XACT_EVENT_PARALLEL_PRE_COMMIT | XACT_EVENT_PRE_PREPARE => {
            if LEDGER.with_borrow(Ledger::is_empty) {
                return;
            }
            LEDGER.with_borrow_mut(Ledger::clear);
            // A logical replication apply worker fires row triggers but never statement
            // triggers: on a subscriber the counted rows arrive without their flush. The
            // counter is the origin's to keep, and arrives with the parent's own replicated
            // rows, as it did with the statement-only triggers of the first version; refusing
            // the commit would stop replication.
            // SAFETY: a plain query of the process kind.
            if !unsafe { pg_sys::IsLogicalWorker() } {
                SafeguardError::new(
                    PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                    "a maintained counter was not updated: the transaction is rolled back",
                )
                .with_detail("Rows were counted by maintain_count()'s row triggers, but its statement trigger did not run.")
                .with_hint("Enable every sg_count_... trigger of the table again, or remove the counter with safeguard.drop_rule().")
                .report()
            }
        }
        _ => {}
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn on_subtransaction_event(
    event: pg_sys::SubXactEvent::Type,
    subxact: pg_sys::SubTransactionId,
    _parent: pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    if event == pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB {
        LEDGER.with_borrow_mut(|ledger| ledger.forget_from(subxact));
    }
}

/// Registers the callbacks that drop the deltas of rolled-back work; from `_PG_init`.
pub fn init() {
    // SAFETY: registered once per process, while it loads the library.
    unsafe {
        pg_sys::RegisterXactCallback(Some(on_transaction_event), std::ptr::null_mut());
        pg_sys::RegisterSubXactCallback(Some(on_subtransaction_event), std::ptr::null_mut());
    }
}
