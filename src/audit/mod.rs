//! Audit trail: one generic trigger written in Rust, an append-only log.
//!
//! SQL surface (`sql/audit.sql`): the log `safeguard.audit_log`, `enable_audit()`,
//! `disable_audit()`, the view `audited_tables`, `audit_history()`. Here: the triggers, the
//! log's append-only guard and `audit_read()`.
//!
//! INSERT and DELETE are logged by statement-level triggers over transition tables, so COPY and
//! INSERT ... SELECT pay one trigger call per statement, not per row. UPDATE is logged per row:
//! old and new row are compared column by column in Rust (binary equality) to log only what
//! changed. The JSON is PostgreSQL's own `to_jsonb` of the row, minus the keys that are not
//! logged, so every type is rendered the way `to_jsonb` renders it (an encrypted column's stored
//! text included).
//! Entries are written straight into the log's heap and indexes (`direct`); when a DBA has
//! extended the log with something only the executor honours (an insert trigger, a CHECK
//! constraint, ...), through SQL statements prepared once per backend (`INSERT_CHANGE`, and
//! `statement` for the set-based inserts), so that it holds.
//! The log is written as its owner, the extension's owner: application roles can read their
//! tenant's rows of the log but cannot insert, update or delete any.

mod blocks;
mod chain;
mod changes;
mod direct;
mod era;
pub(crate) mod statement;

use crate::as_user::AsUser;
use crate::error::SafeguardError;
use changes::{non_key_columns, parse_trigger_args, what_to_log, BadTriggerArgs, Change, Column};
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::spi::OwnedPreparedStatement;
use pgrx::{PgBuiltInOids, PgMemoryContexts, PgOid, PgRelation, PgSqlErrorCode};
use statement::{insert_log_rows, RowsOf};
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::CStr;

pgrx::extension_sql_file!(
    "../../sql/audit.sql",
    name = "audit",
    requires = [
        "tenancy",
        ids::ulid,
        _audit_row,
        _audit_statement,
        _audit_guard
    ]
);
pgrx::extension_sql_file!(
    "../../sql/audit_chain.sql",
    name = "audit_chain",
    requires = ["audit", _audit_purge_through, chain::_audit_seal_chain, chain::_audit_verify_chain]
);

/// One log row per audited change. The row values arrive as `record` parameters and become JSON
/// here, in one statement, so the server renders them exactly as `to_jsonb` does.
/// (`TOKEN_COLUMNS` and its values are appended where the log has the token columns: see
/// `log_has_token_columns`.)
const INSERT_CHANGE: &str = "\
INSERT INTO safeguard.audit_log
       (tenant_id, actor_id, impersonator_id, request_id, db_user, client_addr, application_name,
        txid, table_schema, table_name, operation, record_id, old_data, new_data, changed_columns
        TOKEN_COLUMNS)
VALUES ($1, $2, $3, $4, $5, pg_catalog.inet_client_addr(),
        pg_catalog.current_setting('application_name'), pg_catalog.txid_current() + $15, $12, $13, $11,
        pg_catalog.to_jsonb($10) OPERATOR(pg_catalog.-) $9,
        pg_catalog.to_jsonb($6) OPERATOR(pg_catalog.-) $8,
        pg_catalog.to_jsonb($7) OPERATOR(pg_catalog.-) $8, $14::name[] TOKEN_VALUES)";

const INSERT_READ: &str = "\
INSERT INTO safeguard.audit_log
       (tenant_id, actor_id, impersonator_id, request_id, db_user, client_addr, application_name,
        txid, table_schema, table_name, operation, record_id, new_data TOKEN_COLUMNS)
VALUES ($1, $2, $3, $4, $5, pg_catalog.inet_client_addr(),
        pg_catalog.current_setting('application_name'), pg_catalog.txid_current() + $10, $6, $7, 'READ',
        $8, CASE WHEN $9 IS NULL THEN NULL ELSE pg_catalog.jsonb_build_object('purpose', $9) END TOKEN_VALUES)";

/// `sql` with the token columns and their parameters ($first and the next) when the log has them.
fn with_token_columns(sql: &str, tokens: bool, first: usize) -> String {
    if tokens {
        sql.replace("TOKEN_COLUMNS", ", token_id, token_subject")
            .replace("TOKEN_VALUES", &format!(", ${first}, ${}", first + 1))
    } else {
        sql.replace("TOKEN_COLUMNS", "").replace("TOKEN_VALUES", "")
    }
}

/// Whether the log has the token columns of 0.2.0: not while the library serves a 0.1.0
/// catalog (before ALTER EXTENSION ... UPDATE), whose inserts then leave them out.
fn log_has_token_columns(client: &pgrx::spi::SpiClient<'_>) -> bool {
    client
        .select(
            "SELECT count(*) = 2 FROM pg_catalog.pg_attribute
              WHERE attrelid = 'safeguard.audit_log'::pg_catalog.regclass
                AND attname IN ('token_id', 'token_subject') AND NOT attisdropped",
            Some(1),
            &[],
        )
        .ok()
        .and_then(|rows| rows.first().get_one::<bool>().ok().flatten())
        .unwrap_or(false)
}

/// The context parameters of every log insert: tenant, actor, impersonator, request id and the
/// database user (the first five), the id and subject of the token that set the context (the
/// last two), read here once per write (the same way for every kind of entry).
fn context_params(tenant: Option<pgrx::Uuid>) -> ([DatumWithOid<'static>; 5], [DatumWithOid<'static>; 2]) {
    // SAFETY: a Uuid is a uuid datum.
    let uuid = |id: Option<pgrx::Uuid>| unsafe { DatumWithOid::new(id, pg_sys::UUIDOID) };
    let (token_id, token_subject) = crate::context::current_token();
    (
        [
            uuid(tenant),
            uuid(crate::context::current_actor()),
            uuid(crate::context::current_impersonator()),
            text(crate::context::current_request_id()),
            text(Some(current_user_name())),
        ],
        [text(token_id), text(token_subject)],
    )
}

struct Writer {
    insert_change: OwnedPreparedStatement,
    /// The log's owner, as whom the log is written.
    log_owner: pg_sys::Oid,
    /// Whether the log has the token columns (`log_has_token_columns`).
    tokens: bool,
    /// Statement-trigger inserts, by table and the shape they were prepared for.
    statements: HashMap<StatementKey, OwnedPreparedStatement>,
}

/// What a prepared statement-trigger insert depends on: a change of any of these (the trigger's
/// arguments, the table's columns) needs a new statement.
#[derive(Hash, PartialEq, Eq)]
struct StatementKey {
    relid: pg_sys::Oid,
    rows: RowsOf,
    args: Vec<String>,
    columns: Vec<(pg_sys::Oid, bool)>,
}

thread_local! {
    static WRITER: RefCell<Option<Writer>> = const { RefCell::new(None) };
    /// Raised only by _audit_purge_through() while it deletes expired entries: the guard lets
    /// those deletes through. Not reachable from SQL.
    static PURGING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}


fn current_user_name() -> String {
    // SAFETY: GetUserNameFromId with noerr=false returns a valid palloc'd string or raises.
    unsafe {
        let name = pg_sys::GetUserNameFromId(pg_sys::GetUserId(), false);
        CStr::from_ptr(name).to_string_lossy().into_owned()
    }
}

fn text_array(values: Vec<String>) -> DatumWithOid<'static> {
    // SAFETY: a Vec<String> is a text[] datum.
    unsafe { DatumWithOid::new(values, PgBuiltInOids::TEXTARRAYOID.value()) }
}

fn text(value: Option<String>) -> DatumWithOid<'static> {
    // SAFETY: a String is a text datum.
    unsafe { DatumWithOid::new(value, PgBuiltInOids::TEXTOID.value()) }
}

/// A heap tuple as a composite datum (toasted fields inlined), or NULL.
fn record(tuple: Option<(pg_sys::HeapTuple, pg_sys::TupleDesc)>) -> DatumWithOid<'static> {
    match tuple {
        // SAFETY: the tuple and descriptor come from the trigger's relation.
        Some((tuple, desc)) => unsafe {
            let datum = pg_sys::heap_copy_tuple_as_datum(tuple, desc);
            DatumWithOid::new(datum, pg_sys::RECORDOID)
        },
        None => DatumWithOid::null_oid(pg_sys::RECORDOID),
    }
}

/// Runs `f` with this backend's writer (prepared on first use) inside an SPI connection.
fn with_writer<R>(f: impl FnOnce(&mut pgrx::spi::SpiClient<'_>, &mut Writer) -> R) -> R {
    Spi::connect_mut(|client| {
        WRITER.with_borrow_mut(|slot| {
            if slot.is_none() {
                let types: Vec<PgOid> = [
                    pg_sys::UUIDOID,
                    pg_sys::UUIDOID,
                    pg_sys::UUIDOID,
                    pg_sys::TEXTOID,
                    pg_sys::TEXTOID,
                    pg_sys::RECORDOID,
                    pg_sys::RECORDOID,
                    pg_sys::TEXTARRAYOID,
                    pg_sys::TEXTARRAYOID,
                    pg_sys::RECORDOID,
                    pg_sys::TEXTOID,
                    pg_sys::TEXTOID,
                    pg_sys::TEXTOID,
                    pg_sys::TEXTARRAYOID,
                    pg_sys::INT8OID,
                    pg_sys::TEXTOID,
                    pg_sys::TEXTOID,
                ]
                .into_iter()
                .map(PgOid::from)
                .collect();
                let tokens = log_has_token_columns(client);
                let insert_change = client
                    .prepare_mut(with_token_columns(INSERT_CHANGE, tokens, 16).as_str(), &types)
                    .unwrap_or_else(|e| pgrx::error!("pg_safeguard: preparing the audit insert failed: {e}"))
                    .keep();
                let log_owner = client
                    .select(
                        "SELECT relowner FROM pg_catalog.pg_class WHERE oid = 'safeguard.audit_log'::pg_catalog.regclass",
                        None,
                        &[],
                    )
                    .ok()
                    .and_then(|table| table.first().get_one::<pg_sys::Oid>().ok().flatten())
                    .unwrap_or_else(|| pgrx::error!("pg_safeguard: safeguard.audit_log not found"));
                *slot = Some(Writer { insert_change, log_owner, tokens, statements: HashMap::new() });
            }
            let writer = slot.as_mut().expect("writer was just prepared");
            f(client, writer)
        })
    })
}

impl From<BadTriggerArgs> for SafeguardError {
    fn from(_: BadTriggerArgs) -> Self {
        SafeguardError::new(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "the audit trigger has arguments it does not understand",
        )
        .with_hint("Create audit triggers with safeguard.enable_audit(), not by hand.")
    }
}

/// A trigger function attached by hand the wrong way (row trigger for TRUNCATE, statement
/// trigger without its transition table, ...).
fn misused_trigger() -> ! {
    SafeguardError::new(
        PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        "the audit trigger is attached in a way it does not support",
    )
    .with_hint("Create audit triggers with safeguard.enable_audit(), not by hand.")
    .report()
}

/// Binary equality of one column in two tuples (what PostgreSQL's datumIsEqual does): a value
/// whose bytes differ counts as changed.
///
/// # Safety
/// Both tuples must have been formed with `desc`; `attr` must be attribute `attnum` of `desc`.
unsafe fn same_value(
    old: pg_sys::HeapTuple,
    new: pg_sys::HeapTuple,
    desc: pg_sys::TupleDesc,
    attnum: i32,
    attr: &pg_sys::FormData_pg_attribute,
) -> bool {
    unsafe {
        let (mut old_null, mut new_null) = (false, false);
        let a = pg_sys::heap_getattr(old, attnum, desc, &mut old_null);
        let b = pg_sys::heap_getattr(new, attnum, desc, &mut new_null);
        if old_null || new_null {
            return old_null && new_null;
        }
        if attr.attbyval {
            return a == b;
        }
        let (pa, pb) = (a.cast_mut_ptr::<u8>(), b.cast_mut_ptr::<u8>());
        let len = match attr.attlen {
            len if len > 0 => len as usize,
            -1 => {
                let (la, lb) = (
                    pgrx::varlena::varsize_any(pa.cast()),
                    pgrx::varlena::varsize_any(pb.cast()),
                );
                if la != lb {
                    return false;
                }
                la
            }
            _ => {
                let (sa, sb) = (CStr::from_ptr(pa.cast()), CStr::from_ptr(pb.cast()));
                return sa == sb;
            }
        };
        std::slice::from_raw_parts(pa, len) == std::slice::from_raw_parts(pb, len)
    }
}

/// A uuid column of a tuple, or None when it is NULL.
///
/// # Safety
/// The tuple must have been formed with `desc`, and attribute `attnum` must be of type uuid.
unsafe fn uuid_at(
    tuple: pg_sys::HeapTuple,
    desc: pg_sys::TupleDesc,
    attnum: i32,
) -> Option<pgrx::Uuid> {
    unsafe {
        let mut is_null = false;
        let datum = pg_sys::heap_getattr(tuple, attnum, desc, &mut is_null);
        pgrx::Uuid::from_datum(datum, is_null)
    }
}

/// The names enable_audit() gives its triggers.
const AUDIT_TRIGGERS: &[&str] = &["sg_audit_insert", "sg_audit_update", "sg_audit_delete", "sg_audit_truncate", "sg_audit_row"];

/// Where an audit trigger fires, and what it logs there.
enum Firing {
    /// On the audited table itself: entries name it.
    Table(String, String),
    /// On a copy that Citus made on a shard (the trigger named `<trigger>_<shard id>`): entries
    /// name the Citus table, so that a record's entries name one table whichever node logs them.
    Shard { schema: String, table: String, reference: bool },
}

impl Firing {
    fn of(trigger: &PgTrigger<'_>) -> Result<Firing, PgTriggerError> {
        let schema = trigger.table_schema()?;
        let table = trigger.table_name()?;
        // The shard is read from the table's own name first: on a shard of a partition, the
        // trigger is PostgreSQL's clone of the partitioned table's shard trigger and carries that
        // shard's id, while entries name the partition, as on one server.
        let shard_of = crate::citus::shard_of_trigger_copy(trigger.name()?, AUDIT_TRIGGERS).and_then(|copied_from| {
            crate::citus::shard_id_in_shard_name(&table)
                .and_then(crate::citus::logical_table_of_shard)
                .or_else(|| crate::citus::logical_table_of_shard(copied_from))
        });
        Ok(match shard_of {
            Some(of) => Firing::Shard { schema: of.schema, table: of.table, reference: of.reference },
            None => Firing::Table(schema, table),
        })
    }

    /// Whether this firing logs `operation`. A TRUNCATE of a Citus table runs on the coordinator,
    /// whose trigger on the table logs it once: the copies on the shards stay silent, or it would
    /// be logged once per shard. A reference table has a copy on every node, each changed in the
    /// same transaction: only the coordinator's logs the change (enable_audit() requires it).
    fn logs(&self, operation: &PgTriggerOperation) -> bool {
        match self {
            Firing::Table(..) => true,
            Firing::Shard { reference, .. } => {
                !matches!(operation, PgTriggerOperation::Truncate) && !(*reference && crate::citus::is_worker_cached())
            }
        }
    }

    fn names(self) -> (String, String) {
        match self {
            Firing::Table(schema, table) | Firing::Shard { schema, table, .. } => (schema, table),
        }
    }
}

/// The row trigger of audited tables: AFTER UPDATE FOR EACH ROW (it also handles INSERT and
/// DELETE rows, which enable_audit() leaves to the statement trigger).
#[pg_trigger]
fn _audit_row<'a>(
    trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, PgTriggerError> {
    // An AFTER row trigger only: a BEFORE trigger returning no row would cancel the change, and
    // a statement trigger has no tuples to read.
    if !matches!(trigger.when()?, PgTriggerWhen::After)
        || !matches!(trigger.level(), PgTriggerLevel::Row)
    {
        misused_trigger();
    }
    let args = parse_trigger_args(&trigger.extra_args()?)
        .unwrap_or_else(|e| SafeguardError::from(e).report());
    let data = trigger.trigger_data();
    let operation = trigger.op()?;
    let firing = Firing::of(trigger)?;
    if !firing.logs(&operation) {
        return Ok(None);
    }
    let (schema, table) = firing.names();
    let change = match operation {
        PgTriggerOperation::Insert => Change::Insert,
        PgTriggerOperation::Update => Change::Update,
        PgTriggerOperation::Delete => Change::Delete,
        PgTriggerOperation::Truncate => misused_trigger(),
    };
    // SAFETY: PostgreSQL hands a row trigger its relation and the tuples of this change.
    let desc = unsafe { (*data.tg_relation).rd_att };
    let natts = unsafe { (*desc).natts } as usize;
    let attrs = unsafe { crate::tupdesc::attributes(desc) };
    let (old, new) = match change {
        Change::Insert => (None, Some(data.tg_trigtuple)),
        Change::Update => (Some(data.tg_trigtuple), Some(data.tg_newtuple)),
        Change::Delete => (Some(data.tg_trigtuple), None),
    };

    // An isolated table's entries carry the row's own tenant (after the change; before, for a
    // DELETE), read straight from the tuple; other tables' the request's.
    let mut tenant = if args.tenant_column.is_none() {
        crate::context::current_tenant()
    } else {
        None
    };
    let mut names = Vec::with_capacity(natts);
    let mut columns = Vec::with_capacity(natts);
    for (i, attr) in attrs.iter().enumerate() {
        if attr.attisdropped {
            continue;
        }
        // SAFETY: attname is a NUL-terminated NameData.
        let name = unsafe { CStr::from_ptr(attr.attname.data.as_ptr()) }.to_string_lossy();
        if args.tenant_column.as_deref() == Some(&*name) && attr.atttypid == pg_sys::UUIDOID {
            if let Some(row) = new.or(old) {
                // SAFETY: the tuple belongs to this relation and attribute i + 1 is `attr`.
                tenant = unsafe { uuid_at(row, desc, i as i32 + 1) };
            }
        }
        let unchanged = match (old, new) {
            // SAFETY: both tuples belong to this relation and attribute i + 1 is `attr`.
            (Some(o), Some(n)) => unsafe { same_value(o, n, desc, i as i32 + 1, attr) },
            _ => false,
        };
        names.push((name.into_owned(), unchanged));
    }
    for (name, unchanged) in &names {
        columns.push(Column {
            name,
            excluded: args.excluded.iter().any(|e| e == name),
            unchanged: *unchanged,
        });
    }
    let Some(logged) = what_to_log(change, &columns, args.log_unchanged) else {
        return Ok(None);
    };
    let not_key = non_key_columns(names.iter().map(|(n, _)| n.as_str()), &args.primary_key);
    // Identify the record by its primary key as it is after the change (as it was, for a
    // DELETE); a table without one by its whole row as it was before the change.
    let ident_before = match change {
        Change::Delete => true,
        Change::Update => args.primary_key.is_empty(),
        Change::Insert => false,
    };
    let ident = if ident_before { old } else { new };
    let op = match change {
        Change::Insert => "INSERT",
        Change::Update => "UPDATE",
        Change::Delete => "DELETE",
    };
    if let Some(mut log) = direct::LogTable::open() {
        // The context first: db_user is the caller, not the log's owner.
        let context = direct::Context::read(&schema, &table);
        let _as_owner = AsUser::switch_to(log.owner());
        let dropped = direct::key_list(&logged.dropped_keys);
        let (full_old, full_new) = direct::with_to_jsonb(|to_jsonb| {
            // SAFETY: the trigger's tuples, formed with their relation's descriptor.
            unsafe { (old.map(|t| to_jsonb.tuple(t, desc)), new.map(|t| to_jsonb.tuple(t, desc))) }
        });
        let full_ident = if ident_before { full_old } else { full_new };
        let entry = direct::Entry {
            tenant,
            operation: op,
            record_id: full_ident.map(|json| direct::without_keys(json, direct::key_list(&not_key))),
            old_data: full_old.map(|json| direct::without_keys(json, dropped)),
            new_data: full_new.map(|json| direct::without_keys(json, dropped)),
            changed_columns: logged.changed_columns,
        };
        log.insert(&context, &entry);
        return Ok(None);
    }
    write_change(
        tenant,
        op,
        schema,
        table,
        old.map(|t| (t, desc)),
        new.map(|t| (t, desc)),
        ident.map(|t| (t, desc)),
        logged.dropped_keys,
        not_key,
        logged.changed_columns,
    );
    Ok(None)
}

#[allow(clippy::too_many_arguments)]
fn write_change(
    tenant: Option<pgrx::Uuid>,
    operation: &str,
    schema: String,
    table: String,
    old: Option<(pg_sys::HeapTuple, pg_sys::TupleDesc)>,
    new: Option<(pg_sys::HeapTuple, pg_sys::TupleDesc)>,
    ident: Option<(pg_sys::HeapTuple, pg_sys::TupleDesc)>,
    dropped_keys: Vec<String>,
    not_key: Vec<String>,
    changed_columns: Option<Vec<String>>,
) {
    let ([tenant, actor, impersonator, request, db_user], [token_id, token_subject]) = context_params(tenant);
    let params = [
        tenant,
        actor,
        impersonator,
        request,
        db_user,
        record(old),
        record(new),
        text_array(dropped_keys),
        text_array(not_key),
        record(ident),
        text(Some(operation.to_owned())),
        text(Some(schema)),
        text(Some(table)),
        // SAFETY: a Vec<String> is a text[] datum.
        unsafe { DatumWithOid::new(changed_columns, PgBuiltInOids::TEXTARRAYOID.value()) },
        era::txid_offset().into(),
        token_id,
        token_subject,
    ];
    with_writer(|client, writer| {
        let _as_owner = AsUser::switch_to(writer.log_owner);
        client
            .update(&writer.insert_change, None, &params)
            .unwrap_or_else(|e| pgrx::error!("pg_safeguard: writing the audit log failed: {e}"));
    });
}

/// The statement triggers of audited tables: AFTER INSERT (REFERENCING NEW TABLE AS sg_new),
/// AFTER DELETE (REFERENCING OLD TABLE AS sg_old) and AFTER TRUNCATE, FOR EACH STATEMENT.
#[pg_trigger]
fn _audit_statement<'a>(
    trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, PgTriggerError> {
    if !matches!(trigger.when()?, PgTriggerWhen::After)
        || !matches!(trigger.level(), PgTriggerLevel::Statement)
    {
        misused_trigger();
    }
    let raw_args = trigger.extra_args()?;
    let args = parse_trigger_args(&raw_args).unwrap_or_else(|e| SafeguardError::from(e).report());
    let firing = Firing::of(trigger)?;
    if !firing.logs(&trigger.op()?) {
        return Ok(None);
    }
    let (schema, table) = firing.names();
    let data = trigger.trigger_data();
    let rows = match trigger.op()? {
        PgTriggerOperation::Insert if !data.tg_newtable.is_null() => RowsOf::Inserted,
        PgTriggerOperation::Delete if !data.tg_oldtable.is_null() => RowsOf::Deleted,
        PgTriggerOperation::Truncate => {
            write_change(
                crate::context::current_tenant(),
                "TRUNCATE",
                schema,
                table,
                None,
                None,
                None,
                vec![],
                vec![],
                None,
            );
            return Ok(None);
        }
        _ => misused_trigger(),
    };
    if let Some(mut log) = direct::LogTable::open() {
        let store = match rows {
            RowsOf::Inserted => data.tg_newtable,
            RowsOf::Deleted => data.tg_oldtable,
        };
        // SAFETY: PostgreSQL hands the trigger its open relation and its transition table.
        unsafe { log_transition_rows(&mut log, &args, rows, &schema, &table, data.tg_relation, store) };
        return Ok(None);
    }
    let relid = trigger.relid()?;
    // SAFETY: PostgreSQL hands the trigger its open relation.
    let columns = unsafe {
        crate::tupdesc::attributes((*data.tg_relation).rd_att)
            .iter()
            .map(|a| (a.atttypid, a.attisdropped))
            .collect()
    };
    let key = StatementKey {
        relid,
        rows,
        args: raw_args,
        columns,
    };
    let ([tenant, actor, impersonator, request, db_user], [token_id, token_subject]) =
        context_params(crate::context::current_tenant());
    let params = [
        tenant,
        actor,
        impersonator,
        request,
        db_user,
        text(Some(schema)),
        text(Some(table)),
        text_array(args.excluded.clone()),
        text_array(args.primary_key.clone()),
        era::txid_offset().into(),
        token_id,
        token_subject,
    ];
    with_writer(|client, writer| {
        // SAFETY: this is a trigger call: its TriggerData is valid for the whole call. It makes
        // the transition table visible to the statements of this SPI connection.
        unsafe { pg_sys::SPI_register_trigger_data(std::ptr::from_ref(data).cast_mut()) };
        let log_owner = writer.log_owner;
        let tokens = writer.tokens;
        let prepared = match writer.statements.entry(key) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => {
                let sql = insert_log_rows(rows, args.tenant_column.as_deref(), &args.primary_key, tokens);
                let types: Vec<PgOid> = [
                    pg_sys::UUIDOID,
                    pg_sys::UUIDOID,
                    pg_sys::UUIDOID,
                    pg_sys::TEXTOID,
                    pg_sys::TEXTOID,
                    pg_sys::TEXTOID,
                    pg_sys::TEXTOID,
                    pg_sys::TEXTARRAYOID,
                    pg_sys::TEXTARRAYOID,
                    pg_sys::INT8OID,
                    pg_sys::TEXTOID,
                    pg_sys::TEXTOID,
                ]
                .into_iter()
                .map(PgOid::from)
                .collect();
                let prepared = client
                    .prepare_mut(sql.as_str(), &types)
                    .unwrap_or_else(|e| {
                        pgrx::error!("pg_safeguard: preparing the audit insert failed: {e}")
                    })
                    .keep();
                entry.insert(prepared)
            }
        };
        let _as_owner = AsUser::switch_to(log_owner);
        client
            .update(&*prepared, None, &params)
            .unwrap_or_else(|e| pgrx::error!("pg_safeguard: writing the audit log failed: {e}"));
    });
    Ok(None)
}

/// Writes one log entry per row of a statement trigger's transition table, straight into the log.
/// Each row's memory is freed before the next, so a COPY of millions of rows runs in constant
/// memory.
///
/// # Safety
/// `relation` is the firing trigger's table and `store` its transition table of `rows`.
unsafe fn log_transition_rows(
    log: &mut direct::LogTable,
    args: &changes::TriggerArgs,
    rows: RowsOf,
    schema: &str,
    table: &str,
    relation: pg_sys::Relation,
    store: *mut pg_sys::Tuplestorestate,
) {
    // The context first: db_user is the caller, not the log's owner.
    let context = direct::Context::read(schema, table);
    let _as_owner = AsUser::switch_to(log.owner());
    let request_tenant = if args.tenant_column.is_none() {
        crate::context::current_tenant()
    } else {
        None
    };
    // SAFETY: the caller hands the trigger's open relation.
    let desc = unsafe { (*relation).rd_att };
    let attrs = unsafe { crate::tupdesc::attributes(desc) };
    let mut tenant_attnum = None;
    let mut names = Vec::with_capacity(attrs.len());
    for (i, attr) in attrs.iter().enumerate() {
        if attr.attisdropped {
            continue;
        }
        // SAFETY: attname is a NUL-terminated NameData.
        let name = unsafe { CStr::from_ptr(attr.attname.data.as_ptr()) }.to_string_lossy();
        if args.tenant_column.as_deref() == Some(&*name) && attr.atttypid == pg_sys::UUIDOID {
            tenant_attnum = Some(i as i32 + 1);
        }
        names.push(name);
    }
    let excluded = direct::key_list(&args.excluded);
    let not_key = direct::key_list(&non_key_columns(names.iter().map(|n| &**n), &args.primary_key));
    let (operation, inserted) = match rows {
        RowsOf::Inserted => ("INSERT", true),
        RowsOf::Deleted => ("DELETE", false),
    };
    let mut row_memory = PgMemoryContexts::new("pg_safeguard audit row");
    direct::with_to_jsonb(|to_jsonb| {
        // SAFETY: the caller's transition table holds rows of `desc`.
        unsafe {
            direct::for_each_transition_row(store, desc, |slot| {
                row_memory.reset();
                row_memory.switch_to(|_| {
                    let tenant = match tenant_attnum {
                        Some(attnum) => {
                            let mut is_null = false;
                            let datum = pg_sys::slot_getattr(slot, attnum, &mut is_null);
                            pgrx::Uuid::from_datum(datum, is_null)
                        }
                        None => request_tenant,
                    };
                    let full = to_jsonb.slot(slot);
                    let data = direct::without_keys(full, excluded);
                    let entry = direct::Entry {
                        tenant,
                        operation,
                        record_id: Some(direct::without_keys(full, not_key)),
                        old_data: (!inserted).then_some(data),
                        new_data: inserted.then_some(data),
                        changed_columns: None,
                    };
                    log.insert(&context, &entry);
                });
            });
        }
    });
}

/// BEFORE UPDATE OR DELETE and BEFORE TRUNCATE (FOR EACH STATEMENT, ENABLE ALWAYS) on
/// safeguard.audit_log, audit_chain and audit_seals: append-only for everyone, their owner and
/// superusers included.
#[pg_trigger]
fn _audit_guard<'a>(
    trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, PgTriggerError> {
    if PURGING.get() && matches!(trigger.op()?, PgTriggerOperation::Delete) {
        return Ok(None);
    }
    let table = trigger.table_name()?;
    SafeguardError::new(
        PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        format!("safeguard.{table} is append-only"),
    )
    .with_detail(
        "Rows of the audit log and of its hash chain cannot be updated, deleted or truncated, by any role.",
    )
    .with_hint("Expired entries are removed with safeguard.audit_purge().")
    .report()
}

/// Deletes the sealed entries at chain positions up to `through_seq` (with their links, for those
/// 0.1.0 sealed; blocks stay whole, as the chain's record), and records the purge so that
/// audit_verify() resumes from `through_link`. Called by safeguard.audit_purge(), which checks
/// the retention; EXECUTE is revoked from PUBLIC.
#[pg_extern(volatile, parallel_unsafe)]
fn _audit_purge_through(through_seq: i64, through_link: &[u8], older_than: &str) -> i64 {
    let _purging = crate::scoped_flag::Raised::raise(&PURGING);
    Spi::connect_mut(|client| {
        let deleted = client
            .update(
                "DELETE FROM safeguard.audit_log l
                  WHERE l.id IN (SELECT c.log_id FROM safeguard.audit_chain c WHERE c.seq <= $1)",
                None,
                &[through_seq.into()],
            )
            .map(|result| result.len() as i64)
            .unwrap_or_else(|e| pgrx::error!("pg_safeguard: purging the audit log failed: {e}"));
        client
            .update(
                "DELETE FROM safeguard.audit_chain WHERE seq <= $1",
                None,
                &[through_seq.into()],
            )
            .unwrap_or_else(|e| pgrx::error!("pg_safeguard: purging the audit chain failed: {e}"));
        // The entries the purged blocks list; the blocks stay, for their links.
        let deleted = deleted + chain::delete_entries_of_blocks(client, through_seq);
        client
            .update(
                "INSERT INTO safeguard.audit_purges (through_seq, through_link, entries, older_than)
                 VALUES ($1, $2, $3, $4::interval)",
                None,
                &[through_seq.into(), through_link.into(), deleted.into(), older_than.into()],
            )
            .unwrap_or_else(|e| pgrx::error!("pg_safeguard: recording the purge failed: {e}"));
        deleted
    })
}

/// Records that the current user read a record (access logging, which triggers cannot see).
/// The caller must be allowed to SELECT from the table.
#[pg_extern(volatile, parallel_unsafe)]
fn audit_read(tbl: PgRelation, record_id: pgrx::JsonB, purpose: default!(Option<&str>, "NULL")) {
    // SAFETY: plain ACL check for the current user on an open relation.
    let allowed = unsafe {
        pg_sys::pg_class_aclcheck(
            tbl.oid(),
            pg_sys::GetUserId(),
            pg_sys::ACL_SELECT as pg_sys::AclMode,
        )
    } == pg_sys::AclResult::ACLCHECK_OK;
    if !allowed {
        SafeguardError::new(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("permission denied for table {}", tbl.name()),
        )
        .with_hint("Only a role that may read the table can record a read of it.")
        .report();
    }
    let ([tenant, actor, impersonator, request, db_user], [token_id, token_subject]) =
        context_params(crate::context::current_tenant());
    let params = [
        tenant,
        actor,
        impersonator,
        request,
        db_user,
        text(Some(tbl.namespace().to_owned())),
        text(Some(tbl.name().to_owned())),
        // SAFETY: JsonB is a jsonb datum.
        unsafe { DatumWithOid::new(record_id, PgBuiltInOids::JSONBOID.value()) },
        text(purpose.map(str::to_owned)),
        era::txid_offset().into(),
        token_id,
        token_subject,
    ];
    with_writer(|client, writer| {
        let _as_owner = AsUser::switch_to(writer.log_owner);
        client
            .update(with_token_columns(INSERT_READ, writer.tokens, 11).as_str(), None, &params)
            .unwrap_or_else(|e| pgrx::error!("pg_safeguard: writing the audit log failed: {e}"));
    });
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    use crate::test_support::one;

    #[pg_test]
    fn changes_are_logged_with_only_what_changed() {
        Spi::run("CREATE TABLE audited (id int PRIMARY KEY, a text, secret text)").unwrap();
        Spi::run("SELECT safeguard.enable_audit('audited', '{secret}')").unwrap();
        Spi::run("INSERT INTO audited SELECT n, 'a' || n, 's' FROM generate_series(1, 3) n")
            .unwrap();
        Spi::run("UPDATE audited SET a = 'changed', secret = 'x' WHERE id = 2").unwrap();
        Spi::run("UPDATE audited SET secret = 'y'").unwrap();
        Spi::run("DELETE FROM audited WHERE id = 3").unwrap();
        assert_eq!(
            one::<String>(
                "SELECT string_agg(operation || ' ' || record_id::text, ', ' ORDER BY id)
                   FROM safeguard.audit_log WHERE table_name = 'audited'"
            ),
            "INSERT {\"id\": 1}, INSERT {\"id\": 2}, INSERT {\"id\": 3}, UPDATE {\"id\": 2}, DELETE {\"id\": 3}"
        );
        assert_eq!(
            one::<String>(
                "SELECT old_data::text || ' ' || new_data::text || ' ' || changed_columns::text
                   FROM safeguard.audit_log WHERE operation = 'UPDATE'"
            ),
            "{\"a\": \"a2\"} {\"a\": \"changed\"} {a}"
        );
        assert!(!one::<bool>(
            "SELECT bool_or(coalesce(old_data ? 'secret', false) OR coalesce(new_data ? 'secret', false))
               FROM safeguard.audit_log"
        ));
    }

    #[pg_test(error = "safeguard.audit_log is append-only")]
    fn the_log_refuses_updates_even_from_superusers() {
        Spi::run("CREATE TABLE audited2 (id int PRIMARY KEY)").unwrap();
        Spi::run("SELECT safeguard.enable_audit('audited2')").unwrap();
        Spi::run("INSERT INTO audited2 VALUES (1)").unwrap();
        Spi::run("UPDATE safeguard.audit_log SET request_id = 'forged'").unwrap();
    }
}
