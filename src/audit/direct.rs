//! Writing audit entries straight into the log's heap and indexes, without SPI or the executor.
//!
//! Why: measured CPU-bound (benches/audit.sh), a single-row audited INSERT spent more in SPI
//! and executor start-up for its one-row log insert (plan-tree initialisation, the transition
//! table scan, parameter lists) than in writing the row and its index entries. The log has no
//! user-visible behaviour on INSERT beyond its row and its index entries: no insert trigger, no
//! CHECK constraint, no generated column, no insert policy that binds its owner. So the entry
//! is formed here and handed to `heap_insert` and `index_insert`, as PostgreSQL's own catalog
//! code writes catalog rows.
//!
//! Only while the log has that shape. Indexes of any kind are maintained here (expressions and
//! predicates evaluated as the executor does). A DBA may add what only the executor honours: an
//! insert trigger (to forward the log, say), a CHECK constraint, a NOT NULL, an exclusion or
//! deferrable constraint, a column; then [`LogTable::open`] answers `None` and the caller writes
//! through SPI, so that every such rule holds as for any other insert.
//!
//! The JSON is PostgreSQL's own `to_jsonb` of the row (called through the function manager),
//! minus the keys not logged, exactly what the SPI statements compute.

use pgrx::pg_sys;
use pgrx::prelude::*;
use std::ffi::CStr;

/// The log's columns, in the order [`LogTable::insert`] fills them, with their types. A log with any other
/// live column, or one of these with another type, is not written directly.
const COLUMNS: [(&str, pg_sys::Oid); 19] = [
    ("id", pg_sys::UUIDOID),
    ("occurred_at", pg_sys::TIMESTAMPTZOID),
    ("tenant_id", pg_sys::UUIDOID),
    ("actor_id", pg_sys::UUIDOID),
    ("impersonator_id", pg_sys::UUIDOID),
    ("request_id", pg_sys::TEXTOID),
    ("db_user", pg_sys::NAMEOID),
    ("client_addr", pg_sys::INETOID),
    ("application_name", pg_sys::TEXTOID),
    ("txid", pg_sys::INT8OID),
    ("table_schema", pg_sys::NAMEOID),
    ("table_name", pg_sys::NAMEOID),
    ("operation", pg_sys::TEXTOID),
    ("record_id", pg_sys::JSONBOID),
    ("old_data", pg_sys::JSONBOID),
    ("new_data", pg_sys::JSONBOID),
    ("changed_columns", pg_sys::NAMEARRAYOID),
    ("token_id", pg_sys::TEXTOID),
    ("token_subject", pg_sys::TEXTOID),
];

/// The last columns of [`COLUMNS`], which a 0.1.0 log does not have.
const TOKEN_COLUMNS: usize = 2;

/// Columns the log declares NOT NULL; a NOT NULL on any other column sends writes through SPI,
/// where the executor checks it.
const NOT_NULL: [&str; 6] = ["id", "occurred_at", "db_user", "table_schema", "table_name", "operation"];

/// What one log entry adds to its [`Context`]; datums allocated in the current memory context.
pub(super) struct Entry {
    pub tenant: Option<pgrx::Uuid>,
    pub operation: &'static str,
    pub record_id: Option<pg_sys::Datum>,
    pub old_data: Option<pg_sys::Datum>,
    pub new_data: Option<pg_sys::Datum>,
    pub changed_columns: Option<Vec<String>>,
}

/// What every entry of one trigger call shares: the request context and the session's facts,
/// read once per call (per statement for COPY and INSERT ... SELECT).
pub(super) struct Context {
    actor: Option<pgrx::Uuid>,
    impersonator: Option<pgrx::Uuid>,
    request_id: Option<String>,
    token_id: Option<String>,
    token_subject: Option<String>,
    db_user: pg_sys::Datum,
    client_addr: Option<pg_sys::Datum>,
    application_name: pg_sys::Datum,
    schema: pg_sys::Datum,
    table: pg_sys::Datum,
}

impl Context {
    /// Reads the context; the datums live in the current memory context.
    pub(super) fn read(schema: &str, table: &str) -> Self {
        // SAFETY: GetUserNameFromId with noerr = false returns a NUL-terminated name or raises;
        // application_name is a GUC string PostgreSQL keeps valid (NULL only before it is set).
        unsafe {
            let user = CStr::from_ptr(pg_sys::GetUserNameFromId(pg_sys::GetUserId(), false));
            let application_name = if pg_sys::application_name.is_null() {
                c""
            } else {
                CStr::from_ptr(pg_sys::application_name)
            };
            let (token_id, token_subject) = crate::context::current_token();
            Self {
                token_id,
                token_subject,
                actor: crate::context::current_actor(),
                impersonator: crate::context::current_impersonator(),
                request_id: crate::context::current_request_id(),
                db_user: name_datum(user.to_bytes()),
                client_addr: client_addr(),
                application_name: text_datum(application_name.to_bytes()),
                schema: name_datum(schema.as_bytes()),
                table: name_datum(table.as_bytes()),
            }
        }
    }
}

/// The log, opened for direct inserts, with its indexes.
pub(super) struct LogTable {
    rel: pg_sys::Relation,
    indexes: Vec<(pg_sys::Relation, *mut pg_sys::IndexInfo)>,
    /// Only when the log has expression or partial indexes (a DBA's): the executor
    /// state their expressions and predicates are evaluated in, as ExecInsertIndexTuples does.
    estate: *mut pg_sys::EState,
    /// Attribute number (0-based) of each of [`COLUMNS`] in the log's descriptor.
    positions: [usize; COLUMNS.len()],
    natts: usize,
    slot: *mut pg_sys::TupleTableSlot,
}

impl LogTable {
    /// Opens safeguard.audit_log with a RowExclusiveLock (kept until the transaction ends), or
    /// `None` when the log has a shape only the executor handles (see the module comment).
    pub(super) fn open() -> Option<Self> {
        // SAFETY: plain catalog lookups and relation opening; every relation opened here is
        // closed by Drop, or by the resource owner when an error aborts the transaction.
        unsafe {
            let namespace = pg_sys::get_namespace_oid(c"safeguard".as_ptr(), false);
            let relid = pg_sys::get_relname_relid(c"audit_log".as_ptr(), namespace);
            if relid == pg_sys::InvalidOid {
                pgrx::error!("pg_safeguard: safeguard.audit_log not found");
            }
            let lock = pg_sys::RowExclusiveLock as pg_sys::LOCKMODE;
            let rel = pg_sys::relation_open(relid, lock);
            let mut table = LogTable {
                rel,
                indexes: Vec::new(),
                positions: [usize::MAX; COLUMNS.len()],
                natts: 0,
                slot: std::ptr::null_mut(),
                estate: std::ptr::null_mut(),
            };
            if !table.has_plain_shape() {
                return None;
            }
            let list = pg_sys::RelationGetIndexList(rel);
            let index_oids: Vec<pg_sys::Oid> = if list.is_null() {
                vec![]
            } else {
                let list = &*list;
                (0..list.length as usize).map(|i| (*list.elements.add(i)).oid_value).collect()
            };
            pg_sys::list_free(list);
            for oid in index_oids {
                let index = pg_sys::index_open(oid, lock);
                let info = pg_sys::BuildIndexInfo(index);
                table.indexes.push((index, info));
                // Exclusion constraints and deferred uniqueness need the executor's rechecks.
                if !(*info).ii_ExclusionOps.is_null() || !(*(*index).rd_index).indimmediate {
                    return None;
                }
                if !(*info).ii_Expressions.is_null() || !(*info).ii_Predicate.is_null() {
                    if table.estate.is_null() {
                        table.estate = pg_sys::CreateExecutorState();
                        pg_sys::MakePerTupleExprContext(table.estate);
                    }
                    if !(*info).ii_Predicate.is_null() {
                        (*info).ii_PredicateState = pg_sys::ExecPrepareQual((*info).ii_Predicate, table.estate);
                    }
                }
            }
            table.slot = pg_sys::MakeSingleTupleTableSlot((*rel).rd_att, &pg_sys::TTSOpsHeapTuple);
            if !table.estate.is_null() {
                (*(*table.estate).es_per_tuple_exprcontext).ecxt_scantuple = table.slot;
            }
            Some(table)
        }
    }

    /// A plain heap table with the known columns, no insert triggers, no CHECK constraint and
    /// no forced row security; fills `positions`.
    ///
    /// # Safety
    /// `self.rel` is open.
    unsafe fn has_plain_shape(&mut self) -> bool {
        unsafe {
            let rel = &*self.rel;
            let form = &*rel.rd_rel;
            if form.relkind != pg_sys::RELKIND_RELATION as std::ffi::c_char
                || form.relam != pg_sys::HEAP_TABLE_AM_OID
                || form.relforcerowsecurity
            {
                return false;
            }
            if !rel.trigdesc.is_null() {
                let t = &*rel.trigdesc;
                if t.trig_insert_before_row
                    || t.trig_insert_after_row
                    || t.trig_insert_instead_row
                    || t.trig_insert_before_statement
                    || t.trig_insert_after_statement
                    || t.trig_insert_new_table
                {
                    return false;
                }
            }
            let desc = rel.rd_att;
            if !(*desc).constr.is_null() && (*(*desc).constr).num_check > 0 {
                return false;
            }
            let attrs = crate::tupdesc::attributes(desc);
            self.natts = attrs.len();
            for (i, attr) in attrs.iter().enumerate() {
                if attr.attisdropped {
                    continue;
                }
                let name = CStr::from_ptr(attr.attname.data.as_ptr()).to_bytes();
                let Some(k) = COLUMNS.iter().position(|(c, _)| c.as_bytes() == name) else {
                    return false;
                };
                let allowed_not_null = NOT_NULL.iter().any(|c| c.as_bytes() == name);
                if COLUMNS[k].1 != attr.atttypid
                    || attr.attgenerated != 0
                    || (attr.attnotnull && !allowed_not_null)
                {
                    return false;
                }
                self.positions[k] = i;
            }
            // The token columns (0.2.0) are absent while the library serves a 0.1.0 catalog
            // (before ALTER EXTENSION ... UPDATE): written when present, left out otherwise.
            self.positions[..COLUMNS.len() - TOKEN_COLUMNS].iter().all(|&p| p != usize::MAX)
        }
    }

    /// The log's owner, as whom it is written.
    pub(super) fn owner(&self) -> pg_sys::Oid {
        // SAFETY: the relation is open.
        unsafe { (*(*self.rel).rd_rel).relowner }
    }

    /// Inserts one entry, with its index entries.
    pub(super) fn insert(&mut self, context: &Context, entry: &Entry) {
        // txid_current() plus this cluster's offset (era.rs), as every writer records it.
        // SAFETY: reads (or assigns) the top-level transaction's ID.
        let txid = unsafe { pg_sys::GetTopFullTransactionId() }.value as i64 + super::era::txid_offset();
        let datums: [Option<pg_sys::Datum>; COLUMNS.len()] = [
            crate::ids::new_id().into_datum(),
            // SAFETY: reads the clock, like clock_timestamp(), the column's default.
            Some(pg_sys::Datum::from(unsafe { pg_sys::GetCurrentTimestamp() })),
            entry.tenant.and_then(|u| u.into_datum()),
            context.actor.and_then(|u| u.into_datum()),
            context.impersonator.and_then(|u| u.into_datum()),
            context.request_id.as_deref().map(|r| text_datum(r.as_bytes())),
            Some(context.db_user),
            context.client_addr,
            Some(context.application_name),
            Some(pg_sys::Datum::from(txid)),
            Some(context.schema),
            Some(context.table),
            Some(text_datum(entry.operation.as_bytes())),
            entry.record_id,
            entry.old_data,
            entry.new_data,
            entry.changed_columns.as_deref().map(name_array),
            context.token_id.as_deref().map(|t| text_datum(t.as_bytes())),
            context.token_subject.as_deref().map(|t| text_datum(t.as_bytes())),
        ];
        let mut values = vec![pg_sys::Datum::from(0); self.natts];
        let mut nulls = vec![true; self.natts];
        for (k, datum) in datums.into_iter().enumerate() {
            if self.positions[k] == usize::MAX {
                continue; // a token column of a 0.1.0 log
            }
            if let Some(datum) = datum {
                values[self.positions[k]] = datum;
                nulls[self.positions[k]] = false;
            }
        }
        // SAFETY: values and nulls match the log's descriptor (positions come from it); the
        // relation and its indexes are open with RowExclusiveLock.
        unsafe {
            let rel = self.rel;
            let tuple = pg_sys::heap_form_tuple((*rel).rd_att, values.as_mut_ptr(), nulls.as_mut_ptr());
            pg_sys::heap_insert(rel, tuple, pg_sys::GetCurrentCommandId(true), 0, std::ptr::null_mut());
            pg_sys::ExecStoreHeapTuple(tuple, self.slot, false);
            let econtext = if self.estate.is_null() {
                std::ptr::null_mut()
            } else {
                let econtext = (*self.estate).es_per_tuple_exprcontext;
                pg_sys::MemoryContextReset((*econtext).ecxt_per_tuple_memory);
                econtext
            };
            let mut key_values = [pg_sys::Datum::from(0); pg_sys::INDEX_MAX_KEYS as usize];
            let mut key_nulls = [false; pg_sys::INDEX_MAX_KEYS as usize];
            for &(index, info) in &self.indexes {
                // An index being built concurrently takes no entries yet (as in the executor).
                if !(*(*index).rd_index).indisready {
                    continue;
                }
                // A partial index takes only the rows its predicate holds for.
                let predicate = (*info).ii_PredicateState;
                if !predicate.is_null() && !pg_sys::ExecQual(predicate, econtext) {
                    continue;
                }
                pg_sys::FormIndexDatum(
                    info,
                    self.slot,
                    self.estate,
                    key_values.as_mut_ptr(),
                    key_nulls.as_mut_ptr(),
                );
                let check = if (*(*index).rd_index).indisunique {
                    pg_sys::IndexUniqueCheck::UNIQUE_CHECK_YES
                } else {
                    pg_sys::IndexUniqueCheck::UNIQUE_CHECK_NO
                };
                pg_sys::index_insert(
                    index,
                    key_values.as_mut_ptr(),
                    key_nulls.as_mut_ptr(),
                    &mut (*tuple).t_self,
                    rel,
                    check,
                    false,
                    info,
                );
            }
            pg_sys::ExecClearTuple(self.slot);
        }
    }
}

impl Drop for LogTable {
    fn drop(&mut self) {
        // While an error unwinds, the transaction is aborting: its resource owner closes the
        // relations and releases the slot's buffers; calling into PostgreSQL here could raise again.
        if std::thread::panicking() {
            return;
        }
        // SAFETY: each was opened by `open` and not closed since; locks stay until commit.
        unsafe {
            if !self.slot.is_null() {
                pg_sys::ExecDropSingleTupleTableSlot(self.slot);
            }
            for &(index, _info) in &self.indexes {
                // PostgreSQL 17 gave index access methods a clean-up after inserts (BRIN keeps
                // its range map open between them).
                #[cfg(any(feature = "pg17", feature = "pg18"))]
                pg_sys::index_insert_cleanup(index, _info);
                pg_sys::index_close(index, pg_sys::NoLock as pg_sys::LOCKMODE);
            }
            if !self.estate.is_null() {
                pg_sys::FreeExecutorState(self.estate);
            }
            pg_sys::relation_close(self.rel, pg_sys::NoLock as pg_sys::LOCKMODE);
        }
    }
}

/// `to_jsonb(row)`, called through the function manager as the SQL function is: to_jsonb asks
/// its call expression for the argument's type, so the call carries one (`record`: the row
/// datum names its own composite type).
pub(super) struct ToJsonb {
    flinfo: *mut pg_sys::FmgrInfo,
}

impl ToJsonb {
    pub(super) fn new() -> Self {
        // SAFETY: everything is allocated in TopMemoryContext and kept for the backend's life
        // (one per backend, in a thread-local).
        unsafe {
            let old = pg_sys::MemoryContextSwitchTo(pg_sys::TopMemoryContext);
            let flinfo = pg_sys::palloc0(std::mem::size_of::<pg_sys::FmgrInfo>()).cast::<pg_sys::FmgrInfo>();
            let to_jsonb = pg_sys::fmgr_internal_function(c"to_jsonb".as_ptr());
            pg_sys::fmgr_info(to_jsonb, flinfo);
            let argument = pg_sys::makeNullConst(pg_sys::RECORDOID, -1, pg_sys::InvalidOid);
            let args = pg_sys::lappend(std::ptr::null_mut(), argument.cast());
            let call = pg_sys::makeFuncExpr(
                to_jsonb,
                pg_sys::JSONBOID,
                args,
                pg_sys::InvalidOid,
                pg_sys::InvalidOid,
                pg_sys::CoercionForm::COERCE_EXPLICIT_CALL,
            );
            (*flinfo).fn_expr = call.cast();
            pg_sys::MemoryContextSwitchTo(old);
            Self { flinfo }
        }
    }

    /// `to_jsonb(row)` of a heap tuple of a table (toasted values are fetched).
    ///
    /// # Safety
    /// `tuple` was formed with `desc`, the table's descriptor (which names its row type).
    pub(super) unsafe fn tuple(&self, tuple: pg_sys::HeapTuple, desc: pg_sys::TupleDesc) -> pg_sys::Datum {
        unsafe { self.composite(pg_sys::heap_copy_tuple_as_datum(tuple, desc)) }
    }

    /// `to_jsonb(row)` of the row in a slot whose descriptor is a table's.
    ///
    /// # Safety
    /// `slot` holds a row.
    pub(super) unsafe fn slot(&self, slot: *mut pg_sys::TupleTableSlot) -> pg_sys::Datum {
        unsafe { self.composite(pg_sys::ExecFetchSlotHeapTupleDatum(slot)) }
    }

    unsafe fn composite(&self, row: pg_sys::Datum) -> pg_sys::Datum {
        // SAFETY: to_jsonb is strict and the row is not NULL; it returns a jsonb datum.
        unsafe { pg_sys::FunctionCall1Coll(self.flinfo, pg_sys::InvalidOid, row) }
    }
}

thread_local! {
    static TO_JSONB: std::cell::OnceCell<ToJsonb> = const { std::cell::OnceCell::new() };
}

/// Runs `f` with this backend's `to_jsonb` caller (made on first use).
pub(super) fn with_to_jsonb<R>(f: impl FnOnce(&ToJsonb) -> R) -> R {
    TO_JSONB.with(|cell| f(cell.get_or_init(ToJsonb::new)))
}

/// `json - keys` (keys: a text[] datum); `json` itself when there are no keys to remove.
pub(super) fn without_keys(json: pg_sys::Datum, keys: Option<pg_sys::Datum>) -> pg_sys::Datum {
    let Some(keys) = keys else {
        return json;
    };
    // SAFETY: jsonb_delete_array takes a jsonb and a text[]; it never returns NULL for them.
    unsafe {
        pgrx::direct_function_call_as_datum(pg_sys::jsonb_delete_array, &[Some(json), Some(keys)])
            .expect("jsonb - text[] is never NULL")
    }
}

/// Calls `f` with each row of a trigger's transition table, in a slot of the table's
/// descriptor, through a read pointer of its own (as a query scanning it would).
///
/// # Safety
/// `store` is a transition table of the firing trigger and `desc` its table's descriptor.
pub(super) unsafe fn for_each_transition_row(
    store: *mut pg_sys::Tuplestorestate,
    desc: pg_sys::TupleDesc,
    mut f: impl FnMut(*mut pg_sys::TupleTableSlot),
) {
    unsafe {
        let slot = pg_sys::MakeSingleTupleTableSlot(desc, &pg_sys::TTSOpsMinimalTuple);
        let reader = pg_sys::tuplestore_alloc_read_pointer(store, pg_sys::EXEC_FLAG_REWIND as i32);
        pg_sys::tuplestore_select_read_pointer(store, reader);
        pg_sys::tuplestore_rescan(store);
        while pg_sys::tuplestore_gettupleslot(store, true, false, slot) {
            f(slot);
        }
        pg_sys::ExecDropSingleTupleTableSlot(slot);
    }
}

/// A text[] datum, or None for an empty list (removing no key needs no call).
pub(super) fn key_list(keys: &[String]) -> Option<pg_sys::Datum> {
    if keys.is_empty() {
        None
    } else {
        keys.to_vec().into_datum()
    }
}

fn text_datum(bytes: &[u8]) -> pg_sys::Datum {
    // SAFETY: cstring_to_text_with_len copies `len` bytes into a new text datum.
    unsafe {
        pg_sys::Datum::from(pg_sys::cstring_to_text_with_len(bytes.as_ptr().cast(), bytes.len() as i32))
    }
}

/// A `name` datum. The names written here come from the catalogs (schema, table, role), so
/// they already fit in NAMEDATALEN - 1 bytes; longer input is cut at a byte boundary PostgreSQL
/// would also have cut at when the name was created.
fn name_datum(bytes: &[u8]) -> pg_sys::Datum {
    let len = bytes.len().min(pg_sys::NAMEDATALEN as usize - 1);
    // SAFETY: palloc0 returns NAMEDATALEN zeroed bytes, of which at most NAMEDATALEN - 1 are written.
    unsafe {
        let name = pg_sys::palloc0(pg_sys::NAMEDATALEN as usize).cast::<u8>();
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), name, len);
        pg_sys::Datum::from(name)
    }
}

fn name_array(names: &[String]) -> pg_sys::Datum {
    let mut elements: Vec<pg_sys::Datum> = names.iter().map(|n| name_datum(n.as_bytes())).collect();
    // SAFETY: construct_array copies the elements: name is fixed-length NAMEDATALEN, by
    // reference, char-aligned.
    unsafe {
        pg_sys::Datum::from(pg_sys::construct_array(
            elements.as_mut_ptr(),
            elements.len() as i32,
            pg_sys::NAMEOID,
            pg_sys::NAMEDATALEN as i32,
            false,
            pg_sys::TYPALIGN_CHAR as std::ffi::c_char,
        ))
    }
}

thread_local! {
    /// inet_client_addr() of this backend: its client never changes, so it is read once. `None`
    /// inside: a Unix-socket connection (NULL).
    static CLIENT_ADDR: std::cell::OnceCell<Option<Vec<u8>>> = const { std::cell::OnceCell::new() };
}

/// inet_client_addr() as a datum in the current memory context.
fn client_addr() -> Option<pg_sys::Datum> {
    CLIENT_ADDR.with(|cell| {
        let bytes = cell.get_or_init(|| {
            // SAFETY: inet_client_addr takes no argument and returns an inet varlena or NULL.
            unsafe {
                pgrx::direct_function_call_as_datum(pg_sys::inet_client_addr, &[]).map(|datum| {
                    let ptr = datum.cast_mut_ptr::<pg_sys::varlena>();
                    let len = pgrx::varlena::varsize_any(ptr);
                    std::slice::from_raw_parts(ptr.cast::<u8>(), len).to_vec()
                })
            }
        });
        bytes.as_ref().map(|bytes| {
            // SAFETY: a palloc'd copy of the inet varlena read above.
            unsafe {
                let copy = pg_sys::palloc(bytes.len()).cast::<u8>();
                std::ptr::copy_nonoverlapping(bytes.as_ptr(), copy, bytes.len());
                pg_sys::Datum::from(copy)
            }
        })
    })
}
