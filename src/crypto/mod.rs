//! Encrypted columns: AES-256-GCM envelopes (`envelope.rs`), key material (`keys.rs`), the
//! per-backend key cache (`keystore.rs`), the master key from a command (`key_command.rs`) held in
//! memory of its own (`protected.rs`), and here the SQL surface.
//!
//! The types `safeguard.encrypted_text`, `encrypted_bytea` and `encrypted_jsonb` are declared in
//! `sql/crypto.sql` over the C symbols of the functions below: pgrx's `<fn>_wrapper`s, and for
//! the hot casts and decrypt() plain version-1 functions (`sg_*`) that build their result in
//! place.
//! All three store the same envelope; they differ in what a plain input means and what
//! `decrypt()` returns. A plain value becomes an envelope under the active key of
//! `current_tenant()` (the global key when no tenant is set); an envelope's text form is taken
//! as it is, so dumps, restores and replication never encrypt twice.

pub mod envelope;
pub mod key_command;
pub mod keys;
pub mod keystore;
pub mod protected;

use crate::error::{OrReport, SafeguardError};
use crate::v1::{varlena_arg, V1};
use envelope::{Envelope, Malformed};
use keystore::{tenant_bytes, DataKey};
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::{PgSqlErrorCode, Uuid};
use std::ffi::{CStr, CString};

pgrx::extension_sql_file!(
    "../../sql/crypto.sql",
    name = "crypto",
    requires = [
        create_key,
        rotate_key,
        destroy_key,
        shred_tenant,
        rewrap_keys,
        rewrap_keys_from_command,
        _key_store_changed
    ]
);

/// What a plain input means for each type, and the type's name for messages.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Bytea,
    Jsonb,
}

impl Kind {
    fn type_name(self) -> &'static str {
        match self {
            Kind::Text => "safeguard.encrypted_text",
            Kind::Bytea => "safeguard.encrypted_bytea",
            Kind::Jsonb => "safeguard.encrypted_jsonb",
        }
    }
}

fn malformed(kind: Kind, error: Malformed) -> SafeguardError {
    SafeguardError::new(
        PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION,
        format!("malformed encrypted value for type {}", kind.type_name()),
    )
    .with_detail(error.detail())
    .with_hint(format!(
        "A value starting with {} is read as an encrypted value, not as plaintext.",
        envelope::TEXT_PREFIX
    ))
}

fn corrupted(detail: &str) -> SafeguardError {
    SafeguardError::new(PgSqlErrorCode::ERRCODE_DATA_CORRUPTED, "encrypted value failed its integrity check")
        .with_detail(detail.to_owned())
}

/// Encrypts plaintext bytes under the active key of the current tenant.
fn encrypt(plaintext: &[u8]) -> Vec<u8> {
    let tenant = crate::context::current_tenant();
    let (key_id, cipher) = keystore::active_key(tenant);
    envelope::seal(&cipher, key_id, &tenant_bytes(tenant), &keystore::fresh_nonce(), plaintext)
}

/// A new varlena of `len` payload bytes in the current memory context, and its payload.
fn new_varlena(len: usize) -> (pg_sys::Datum, &'static mut [u8]) {
    let total = pg_sys::VARHDRSZ + len;
    // SAFETY: palloc raises on failure; the header is set before the payload is handed out.
    unsafe {
        let ptr = pg_sys::palloc(total) as *mut pg_sys::varlena;
        pgrx::varlena::set_varsize_4b(ptr, total as i32);
        let payload = std::slice::from_raw_parts_mut((ptr as *mut u8).add(pg_sys::VARHDRSZ), len);
        (pg_sys::Datum::from(ptr), payload)
    }
}

/// The hot path of writes: `encrypt()` sealing straight into the varlena PostgreSQL stores.
fn encrypt_to_datum(plaintext: &[u8]) -> pg_sys::Datum {
    let tenant = crate::context::current_tenant();
    let (key_id, cipher) = keystore::active_key(tenant);
    let (datum, out) = new_varlena(envelope::OVERHEAD + plaintext.len());
    envelope::seal_into(&cipher, key_id, &tenant_bytes(tenant), &keystore::fresh_nonce(), plaintext, out);
    datum
}

#[unsafe(no_mangle)]
pub extern "C" fn pg_finfo_sg_encrypt_text() -> &'static pg_sys::Pg_finfo_record {
    &V1
}

/// The assignment casts from text and varchar (a typed bind parameter): like text input, an
/// envelope's text form is kept, anything else encrypted.
#[unsafe(no_mangle)]
#[pg_guard]
pub unsafe extern "C-unwind" fn sg_encrypt_text(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: declared STRICT with one text argument.
    encrypt_cast(Kind::Text, unsafe { varlena_arg(fcinfo, 0) })
}

#[unsafe(no_mangle)]
pub extern "C" fn pg_finfo_sg_encrypt_bytea() -> &'static pg_sys::Pg_finfo_record {
    &V1
}

/// The assignment cast from bytea: bytes that spell an envelope's text form are that envelope.
#[unsafe(no_mangle)]
#[pg_guard]
pub unsafe extern "C-unwind" fn sg_encrypt_bytea(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: declared STRICT with one bytea argument.
    encrypt_cast(Kind::Bytea, unsafe { varlena_arg(fcinfo, 0) })
}

/// A cast's value: an envelope's text form is that envelope, anything else is encrypted.
fn encrypt_cast(kind: Kind, value: &[u8]) -> pg_sys::Datum {
    if envelope::looks_like_text_form(value) {
        return envelope_datum(envelope::from_text(value).map_err(|e| malformed(kind, e)).or_report());
    }
    encrypt_to_datum(value)
}

#[unsafe(no_mangle)]
pub extern "C" fn pg_finfo_sg_decrypt_text() -> &'static pg_sys::Pg_finfo_record {
    &V1
}

/// decrypt(encrypted_text) → text, decrypting straight into the result.
#[unsafe(no_mangle)]
#[pg_guard]
pub unsafe extern "C-unwind" fn sg_decrypt_text(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: declared STRICT with one encrypted_text argument.
    let value = unsafe { varlena_arg(fcinfo, 0) };
    let (datum, plaintext) = decrypt_to_datum(value);
    // A text datum must be valid in the database encoding (which also excludes NUL bytes); an
    // envelope made by another type (bytea) and moved here might not be.
    // SAFETY: checks len bytes at a valid pointer without raising.
    let valid = unsafe {
        pg_sys::pg_verify_mbstr(
            pg_sys::GetDatabaseEncoding(),
            plaintext.as_ptr() as *const std::ffi::c_char,
            plaintext.len() as i32,
            true,
        )
    };
    if !valid {
        SafeguardError::new(PgSqlErrorCode::ERRCODE_CHARACTER_NOT_IN_REPERTOIRE, "decrypted value is not valid text")
            .with_detail("The envelope was not made by safeguard.encrypted_text.")
            .report()
    }
    datum
}

#[unsafe(no_mangle)]
pub extern "C" fn pg_finfo_sg_decrypt_bytea() -> &'static pg_sys::Pg_finfo_record {
    &V1
}

/// decrypt(encrypted_bytea) → bytea, decrypting straight into the result.
#[unsafe(no_mangle)]
#[pg_guard]
pub unsafe extern "C-unwind" fn sg_decrypt_bytea(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: declared STRICT with one encrypted_bytea argument.
    let value = unsafe { varlena_arg(fcinfo, 0) };
    decrypt_to_datum(value).0
}

/// Envelope bytes as a varlena datum.
fn envelope_datum(bytes: Vec<u8>) -> pg_sys::Datum {
    let (datum, out) = new_varlena(bytes.len());
    out.copy_from_slice(&bytes);
    datum
}

/// A value bound for an encrypted column: an envelope's text form is validated and kept as it is
/// (a restore, a replica, an ETL job copying ciphertext: nothing is ever encrypted twice);
/// anything else is plaintext and gets encrypted by `encrypt_plain`.
fn envelope_or(kind: Kind, value: &[u8], encrypt_plain: impl FnOnce() -> Vec<u8>) -> Vec<u8> {
    if envelope::looks_like_text_form(value) {
        envelope::from_text(value).map_err(|e| malformed(kind, e)).or_report()
    } else {
        encrypt_plain()
    }
}

/// Text input of the three types.
fn input(kind: Kind, input: &CStr) -> Vec<u8> {
    let bytes = input.to_bytes();
    envelope_or(kind, bytes, || match kind {
        Kind::Text => encrypt(bytes),
        Kind::Bytea => encrypt(&plain_bytea(input)),
        Kind::Jsonb => encrypt(canonical_json(input).to_bytes()),
    })
}

/// The bytes a bytea literal spells ('\x0a0b' or the escape format). A syntax error is reported
/// without byteain's message, which quotes the offending character.
fn plain_bytea(input: &CStr) -> Vec<u8> {
    let ptr = input.as_ptr();
    let refuse = |_| -> Vec<u8> {
        SafeguardError::new(
            PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION,
            "invalid input syntax for type safeguard.encrypted_bytea",
        )
        .with_detail("The plain value is not a bytea literal such as '\\x0102'.")
        .report()
    };
    // byteain raises 22023 for a bad hex digit and 22P02 for a bad escape.
    PgTryBuilder::new(|| unsafe {
        pgrx::direct_function_call::<Vec<u8>>(pg_sys::byteain, &[Some(pg_sys::Datum::from(ptr))])
            .expect("byteain never returns NULL")
    })
    .catch_when(PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION, refuse)
    .catch_when(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, refuse)
    .execute()
}

/// The jsonb text of `input`, parsed and printed by PostgreSQL itself (key order, spacing and
/// duplicate keys as jsonb has them). A syntax error is reported without quoting the input:
/// jsonb_in's own message would repeat part of the plaintext.
fn canonical_json(input: &CStr) -> &'static CStr {
    let ptr = input.as_ptr();
    let parsed = PgTryBuilder::new(|| unsafe {
        pgrx::direct_function_call_as_datum(pg_sys::jsonb_in, &[Some(pg_sys::Datum::from(ptr))])
            .expect("jsonb_in never returns NULL")
    })
    .catch_when(PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION, |_| {
        SafeguardError::new(
            PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION,
            "invalid input syntax for type safeguard.encrypted_jsonb",
        )
        .with_detail("The plain value is not valid JSON.")
        .report()
    })
    .catch_when(PgSqlErrorCode::ERRCODE_UNTRANSLATABLE_CHARACTER, |_| {
        SafeguardError::new(
            PgSqlErrorCode::ERRCODE_UNTRANSLATABLE_CHARACTER,
            "invalid input for type safeguard.encrypted_jsonb",
        )
        .with_detail("The JSON holds a character the database encoding cannot represent.")
        .report()
    })
    .execute();
    jsonb_text(parsed)
}

/// jsonb_out of a jsonb datum: a palloc'd string that lives as long as the current memory context.
fn jsonb_text(jsonb: pg_sys::Datum) -> &'static CStr {
    // SAFETY: jsonb_out takes a jsonb datum and returns a palloc'd NUL-terminated string.
    unsafe {
        let text = pgrx::direct_function_call_as_datum(pg_sys::jsonb_out, &[Some(jsonb)])
            .expect("jsonb_out never returns NULL");
        CStr::from_ptr(text.cast_mut_ptr())
    }
}

#[pg_extern(sql = false)]
fn encrypted_text_in(value: &CStr) -> Vec<u8> {
    input(Kind::Text, value)
}

#[pg_extern(sql = false)]
fn encrypted_bytea_in(value: &CStr) -> Vec<u8> {
    input(Kind::Bytea, value)
}

#[pg_extern(sql = false)]
fn encrypted_jsonb_in(value: &CStr) -> Vec<u8> {
    input(Kind::Jsonb, value)
}

/// Text output of all three types: the envelope's text form, never the plaintext.
#[pg_extern(sql = false)]
fn encrypted_out(value: &[u8]) -> CString {
    CString::new(envelope::to_text(value)).expect("base64 has no NUL byte")
}

/// Binary input of all three types: the envelope bytes, validated and kept.
#[pg_extern(sql = false)]
fn encrypted_recv(mut buffer: pgrx::Internal) -> Vec<u8> {
    // SAFETY: a receive function's first argument is the StringInfo of the message.
    let buffer = unsafe { buffer.get_mut::<pg_sys::StringInfoData>() }.expect("receive buffer");
    let start = buffer.cursor as usize;
    let len = (buffer.len - buffer.cursor) as usize;
    // SAFETY: data holds len bytes; the cursor marks how many were consumed.
    let bytes = unsafe { std::slice::from_raw_parts(buffer.data.add(start) as *const u8, len) }.to_vec();
    buffer.cursor = buffer.len;
    if let Err(error) = Envelope::parse(&bytes) {
        SafeguardError::new(
            PgSqlErrorCode::ERRCODE_INVALID_BINARY_REPRESENTATION,
            "malformed encrypted value in binary input",
        )
        .with_detail(error.detail())
        .report()
    }
    bytes
}

/// The assignment cast from jsonb.
#[pg_extern(sql = false)]
fn encrypt_jsonb_value(fcinfo: pg_sys::FunctionCallInfo) -> Vec<u8> {
    // SAFETY: declared STRICT with one jsonb argument.
    let jsonb = unsafe { pgrx::fcinfo::pg_getarg_datum_raw(fcinfo, 0) };
    encrypt(jsonb_text(jsonb).to_bytes())
}

/// The usable key of an envelope, after the checks: key present and not destroyed, a tenant's
/// key only in that tenant's context (unless `check_tenant` is off, for re-encryption).
fn opening_key(envelope: &Envelope<'_>, check_tenant: bool) -> (std::rc::Rc<DataKey>, Option<Uuid>) {
    let key = keystore::key_by_id(envelope.key_id);
    let tenant = match key.as_ref() {
        DataKey::Usable { tenant, .. } => *tenant,
        DataKey::Destroyed => SafeguardError::new(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "the key of this encrypted value was destroyed",
        )
        .with_detail(format!("Key {} was destroyed; values encrypted under it cannot be decrypted any more.", envelope.key_id))
        .report(),
    };
    if check_tenant && tenant.is_some() && crate::context::current_tenant() != tenant {
        SafeguardError::new(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            "this encrypted value belongs to another tenant",
        )
        .with_detail("A tenant's values decrypt only while safeguard.current_tenant() is that tenant.")
        .with_hint("Call safeguard.set_context(tenant_id => ...) for the value's tenant first.")
        .report()
    }
    (key, tenant)
}

fn parse_stored(value: &[u8]) -> Envelope<'_> {
    Envelope::parse(value)
        .map_err(|e| corrupted(&format!("The stored envelope is malformed: {}", e.detail())))
        .or_report()
}

fn tamper_error() -> SafeguardError {
    corrupted("The value was altered, or copied from a value encrypted under another key or for another tenant.")
}

/// Decrypts `value` into `out` (exactly its plaintext length) after the checks.
fn decrypt_into(value: &[u8], check_tenant: bool, out: &mut [u8]) {
    let envelope = parse_stored(value);
    let (key, tenant) = opening_key(&envelope, check_tenant);
    let DataKey::Usable { cipher, .. } = key.as_ref() else { unreachable!("opening_key returns usable keys") };
    envelope.open_into(cipher, &tenant_bytes(tenant), out).map_err(|_| tamper_error()).or_report();
}

/// The plaintext of an envelope as a new varlena (text or bytea), and its bytes.
fn decrypt_to_datum(value: &[u8]) -> (pg_sys::Datum, &'static [u8]) {
    let len = parse_stored(value).plaintext_len();
    let (datum, out) = new_varlena(len);
    decrypt_into(value, true, out);
    (datum, out)
}

/// The plaintext of an envelope, after the checks.
fn decrypt(value: &[u8], check_tenant: bool) -> Vec<u8> {
    let mut plaintext = vec![0u8; parse_stored(value).plaintext_len()];
    decrypt_into(value, check_tenant, &mut plaintext);
    plaintext
}

/// Returns the jsonb's own bytes; the SQL declaration makes them a jsonb again (a jsonb is a
/// varlena like the bytea pgrx builds from a `Vec<u8>`).
#[pg_extern(sql = false)]
fn decrypt_jsonb(value: &[u8]) -> Vec<u8> {
    let plaintext = decrypt(value, true);
    let Ok(text) = CString::new(plaintext) else {
        SafeguardError::new(PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION, "decrypted value is not valid JSON")
            .with_detail("The envelope was not made by safeguard.encrypted_jsonb.")
            .report()
    };
    let ptr = text.as_ptr();
    let refuse = |_| -> pg_sys::Datum {
        SafeguardError::new(PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION, "decrypted value is not valid JSON")
            .with_detail("The envelope was not made by safeguard.encrypted_jsonb.")
            .report()
    };
    // jsonb_in's own messages would quote the plaintext.
    let jsonb = PgTryBuilder::new(|| unsafe {
        pgrx::direct_function_call_as_datum(pg_sys::jsonb_in, &[Some(pg_sys::Datum::from(ptr))])
            .expect("jsonb_in never returns NULL")
    })
    .catch_when(PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION, refuse)
    .catch_when(PgSqlErrorCode::ERRCODE_UNTRANSLATABLE_CHARACTER, refuse)
    .catch_when(PgSqlErrorCode::ERRCODE_CHARACTER_NOT_IN_REPERTOIRE, refuse)
    .execute();
    // SAFETY: jsonb_in returns a fresh, untoasted varlena.
    unsafe { pgrx::varlena::varlena_to_byte_slice(jsonb.cast_mut_ptr()) }.to_vec()
}

/// The id of the key an encrypted value is under (no decryption; for reports and re-encryption).
#[pg_extern(sql = false)]
fn encrypted_key_id(value: &[u8]) -> i32 {
    Envelope::parse(value)
        .map(|e| e.key_id as i32)
        .map_err(|e| corrupted(&format!("The stored envelope is malformed: {}", e.detail())))
        .or_report()
}

// ---------------------------------------------------------------------------------------------
// Keys

fn tenant_lock(client: &mut pgrx::spi::SpiClient<'_>, tenant: Option<Uuid>) {
    // One key change per tenant at a time: create_key stays idempotent under concurrency.
    client
        .update(
            "SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended(
                 'pg_safeguard key ' || coalesce($1::text, 'global'), 0))",
            None,
            &[keystore::uuid_arg(tenant)],
        )
        .unwrap_or_else(|e| pgrx::error!("pg_safeguard: locking the tenant's keys failed: {e}"));
}

fn active_key_id(client: &mut pgrx::spi::SpiClient<'_>, tenant: Option<Uuid>) -> Option<i32> {
    client
        .select(
            "SELECT id FROM safeguard.key_store WHERE tenant_id IS NOT DISTINCT FROM $1 AND status = 'active'",
            Some(1),
            &[keystore::uuid_arg(tenant)],
        )
        .ok()
        .and_then(|table| table.first().get_one::<i32>().ok().flatten())
}

/// A new active key for `tenant`: random, wrapped under the master key with its id and tenant.
fn insert_new_key(client: &mut pgrx::spi::SpiClient<'_>, tenant: Option<Uuid>) -> i32 {
    let master = keystore::master_key();
    let id = client
        .update("SELECT pg_catalog.nextval('safeguard.key_store_id_seq')::integer", None, &[])
        .ok()
        .and_then(|table| table.first().get_one::<i32>().ok().flatten())
        .unwrap_or_else(|| pgrx::error!("pg_safeguard: no key id from safeguard.key_store_id_seq"));
    let data_key = keystore::random_key();
    let wrapped = keys::wrap(&master, id as u32, &tenant_bytes(tenant), &keystore::fresh_nonce(), &data_key);
    client
        .update(
            "INSERT INTO safeguard.key_store (id, tenant_id, status, wrapped_key) VALUES ($1, $2, 'active', $3)",
            None,
            &[id.into(), keystore::uuid_arg(tenant), wrapped.into()],
        )
        .unwrap_or_else(|e| pgrx::error!("pg_safeguard: storing the new key failed: {e}"));
    id
}

/// The tenant's active key (the global key without a tenant), created if there is none. Returns
/// its id; calling it again returns the same id.
#[pg_extern(volatile, parallel_unsafe)]
fn create_key(tenant_id: default!(Option<Uuid>, "NULL")) -> i32 {
    keystore::change_keys(|client| {
        tenant_lock(client, tenant_id);
        active_key_id(client, tenant_id).unwrap_or_else(|| insert_new_key(client, tenant_id))
    })
}

/// A new active key for the tenant; the previous one is retired and keeps decrypting.
#[pg_extern(volatile, parallel_unsafe)]
fn rotate_key(tenant_id: default!(Option<Uuid>, "NULL")) -> i32 {
    // Read the master key before changing anything: a missing key file fails the call cleanly.
    keystore::master_key();
    keystore::change_keys(|client| {
        tenant_lock(client, tenant_id);
        client
            .update(
                "UPDATE safeguard.key_store SET status = 'retired', retired_at = pg_catalog.now()
                  WHERE tenant_id IS NOT DISTINCT FROM $1 AND status = 'active'",
                None,
                &[keystore::uuid_arg(tenant_id)],
            )
            .unwrap_or_else(|e| pgrx::error!("pg_safeguard: retiring the active key failed: {e}"));
        insert_new_key(client, tenant_id)
    })
}

/// Statement trigger on the key table (AFTER INSERT, UPDATE, DELETE and TRUNCATE): every backend
/// of this node forgets its cached keys at commit. The key functions do that themselves where
/// they run; the trigger is for the changes they cause elsewhere: on a Citus cluster the key
/// table is a reference table (safeguard.citus_setup()), and a key the coordinator destroys must
/// stop decrypting in the workers' backends too, whose copy is changed by Citus, not by them.
#[pg_trigger]
fn _key_store_changed<'a>(
    trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, PgTriggerError> {
    if !matches!(trigger.level(), PgTriggerLevel::Statement) {
        SafeguardError::new(PgSqlErrorCode::ERRCODE_TRIGGERED_ACTION_EXCEPTION, "safeguard._key_store_changed is a statement trigger")
            .report()
    }
    keystore::invalidate_everywhere();
    Ok(None)
}

/// Destroys a key: its wrapped material is deleted, values under it can never be decrypted again.
#[pg_extern(volatile, strict, parallel_unsafe)]
fn destroy_key(key_id: i32) {
    let found = keystore::change_keys(|client| {
        let exists = client
            .select("SELECT status FROM safeguard.key_store WHERE id = $1", Some(1), &[key_id.into()])
            .map(|table| !table.is_empty())
            .unwrap_or(false);
        if exists {
            client
                .update(
                    "UPDATE safeguard.key_store
                        SET status = 'destroyed', wrapped_key = NULL, destroyed_at = pg_catalog.now()
                      WHERE id = $1 AND status <> 'destroyed'",
                    None,
                    &[key_id.into()],
                )
                .unwrap_or_else(|e| pgrx::error!("pg_safeguard: destroying the key failed: {e}"));
        }
        exists
    });
    if !found {
        SafeguardError::new(PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT, format!("key {key_id} does not exist"))
            .with_hint("See safeguard.keys for the keys there are.")
            .report()
    }
}

/// Destroys every key of a tenant (crypto-shredding). Returns how many keys it destroyed.
#[pg_extern(volatile, parallel_unsafe)]
fn shred_tenant(tenant_id: Option<Uuid>) -> i32 {
    let Some(tenant) = tenant_id else {
        SafeguardError::new(PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED, "shred_tenant needs a tenant id")
            .with_detail("The global key serves values written without a tenant; destroy it by id with safeguard.destroy_key() if that is really meant.")
            .report()
    };
    keystore::change_keys(|client| {
        tenant_lock(client, Some(tenant));
        client
            .update(
                "UPDATE safeguard.key_store
                    SET status = 'destroyed', wrapped_key = NULL, destroyed_at = pg_catalog.now()
                  WHERE tenant_id = $1 AND status <> 'destroyed'",
                None,
                &[keystore::uuid_arg(Some(tenant))],
            )
            .map(|table| table.len() as i32)
            .unwrap_or_else(|e| pgrx::error!("pg_safeguard: destroying the tenant's keys failed: {e}"))
    })
}

/// Master-key rotation: re-wraps every data key that opens under the master key in
/// `previous_key_file` with the configured (new) master key. Keys already under the new key are
/// left as they are, so a run that stopped half-way can simply be repeated. Superusers only (it
/// reads a file named in the call). Returns how many keys it re-wrapped.
#[pg_extern(volatile, strict, parallel_unsafe)]
fn rewrap_keys(previous_key_file: &str) -> i32 {
    require_superuser("rewrap_keys", "It reads a key file named in the call.");
    let previous = keystore::read_key_file(previous_key_file, "The previous master key file").or_report();
    rewrap_keys_from(&previous)
}

/// `rewrap_keys()` for a previous master key that a command prints (a key service): the command
/// runs as `safeguard.master_key_command` does (same placeholders and timeout). Superusers only:
/// it runs a shell command named in the call.
#[pg_extern(volatile, strict, parallel_unsafe)]
fn rewrap_keys_from_command(previous_key_command: &str) -> i32 {
    require_superuser("rewrap_keys_from_command", "It runs a shell command named in the call.");
    let previous = keystore::run_key_command(previous_key_command, "the previous master key's command").or_report();
    rewrap_keys_from(&previous)
}

fn require_superuser(function: &str, why: &str) {
    // SAFETY: superuser() reads the current user's role flags.
    if !unsafe { pg_sys::superuser() } {
        SafeguardError::new(PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE, format!("{function} is for superusers"))
            .with_detail(why)
            .report()
    }
}

/// Re-wraps every data key that opens under `previous` with the configured master key.
fn rewrap_keys_from(previous: &keys::Key) -> i32 {
    let current = keystore::master_key();
    keystore::change_keys(|client| {
        // FOR UPDATE: a concurrent rotate or destroy waits until the keys are re-wrapped.
        let rows: Vec<(i32, Option<Uuid>, Vec<u8>)> = client
            .update(
                "SELECT id, tenant_id, wrapped_key FROM safeguard.key_store WHERE wrapped_key IS NOT NULL ORDER BY id FOR UPDATE",
                None,
                &[],
            )
            .unwrap_or_else(|e| pgrx::error!("pg_safeguard: reading the key table failed: {e}"))
            .filter_map(|row| {
                Some((
                    row.get::<i32>(1).ok()??,
                    row.get::<Uuid>(2).ok().flatten(),
                    row.get::<Vec<u8>>(3).ok()??,
                ))
            })
            .collect();
        let mut count = 0;
        for (id, tenant, wrapped) in rows {
            let tenant_id = tenant_bytes(tenant);
            if keys::unwrap(&current, id as u32, &tenant_id, &wrapped).is_ok() {
                continue; // already under the new master key
            }
            let Ok(data_key) = keys::unwrap(previous, id as u32, &tenant_id, &wrapped) else {
                SafeguardError::new(
                    PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
                    format!("key {id} opens under neither the previous nor the configured master key"),
                )
                .with_hint("Name the key file (or command) the keys were created under.")
                .report()
            };
            let rewrapped = keys::wrap(&current, id as u32, &tenant_id, &keystore::fresh_nonce(), &data_key);
            client
                .update(
                    "UPDATE safeguard.key_store SET wrapped_key = $2 WHERE id = $1",
                    None,
                    &[id.into(), rewrapped.into()],
                )
                .unwrap_or_else(|e| pgrx::error!("pg_safeguard: storing a re-wrapped key failed: {e}"));
            count += 1;
        }
        count
    })
}

/// HMAC-SHA-256 of `value` under a key derived from the master key, the current tenant and
/// `purpose`: equal values give equal bytes, so a UNIQUE index or an equality lookup works on
/// an encrypted column's blind index without revealing the value.
#[pg_extern(sql = false)]
fn blind_index(value: &[u8], purpose: &[u8]) -> Vec<u8> {
    if purpose.is_empty() {
        SafeguardError::new(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, "purpose must not be empty")
            .with_hint("Name what the index is for, such as 'mrn' or 'email': each purpose gets its own key.")
            .report()
    }
    let key = keystore::blind_index_key(crate::context::current_tenant(), purpose);
    keys::blind_index(&key, value).to_vec()
}

// ---------------------------------------------------------------------------------------------
// Re-encryption

/// reencrypt() of a Citus table, called on the coordinator: each shard is re-encrypted on the node
/// that holds it, by reencrypt() itself (the scan and the updates address rows by ctid, which
/// only a shard has), each shard in its own transaction there; returns the total. None where the
/// table is not a Citus table here. A reference table is refused: its copies, each re-encrypted
/// with fresh nonces, would no longer be equal.
fn reencrypt_citus_table(table: pg_sys::Oid, column: &str, batch_size: i32) -> Option<i64> {
    if !crate::citus::installed() || crate::citus::is_worker() {
        return None;
    }
    let method = Spi::get_one_with_args::<String>(
        "SELECT partmethod::text FROM pg_catalog.pg_dist_partition WHERE logicalrelid = $1",
        &[table.into()],
    )
    .unwrap_or_else(|e| pgrx::error!("pg_safeguard: reading Citus's tables failed: {e}"))?;
    if method == "n" {
        SafeguardError::new(PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED, "reencrypt() does not rewrite a Citus reference table")
            .with_detail("Each node holds a copy of it; re-encrypted copy by copy, with fresh nonces, the copies would differ.")
            .with_hint("Rewrite the column with an UPDATE on the coordinator, which Citus applies to every copy alike.")
            .report()
    }
    let (total, failed) = Spi::get_two_with_args::<i64, String>(
        "SELECT coalesce(sum(r.result::bigint) FILTER (WHERE r.success), 0)::bigint,
                string_agg(pg_catalog.format('shard %s: %s', r.shardid, r.result), '; ') FILTER (WHERE NOT r.success)
           FROM pg_catalog.run_command_on_shards($1::regclass,
                    pg_catalog.format('SELECT safeguard.reencrypt(%%L, %L, %s)', $2::text, $3::int)) r",
        &[table.into(), column.into(), batch_size.into()],
    )
    .unwrap_or_else(|e| pgrx::error!("pg_safeguard: re-encrypting the shards failed: {e}"));
    if let Some(failed) = failed {
        SafeguardError::new(PgSqlErrorCode::ERRCODE_SYSTEM_ERROR, "re-encrypting a shard failed")
            .with_detail(failed)
            .with_hint("The shards that succeeded are re-encrypted; call reencrypt() again: it continues where it stopped.")
            .report()
    }
    Some(total.unwrap_or(0))
}

/// Rewrites the values of `col` that are not under the active key of their key's tenant, reading
/// the table once through a cursor `batch_size` rows at a time. Values under destroyed keys stay
/// as they are (a WARNING counts them). Returns how many values it rewrote; running it again
/// after an interruption continues where it stopped, since rewritten values are skipped.
#[pg_extern(sql = false)]
fn reencrypt(table: pg_sys::Oid, column: &CStr, batch_size: i32) -> i64 {
    if batch_size <= 0 {
        SafeguardError::new(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, "batch_size must be positive").report()
    }
    let column = column.to_str().unwrap_or_default().to_owned();
    let (rewritten, destroyed) = Spi::connect_mut(|client| {
        let found = client
            .select(
                "SELECT a.atttypid, pg_catalog.format('SELECT tableoid, ctid::text, %I::text FROM %s', a.attname, $1::regclass),
                        pg_catalog.format('UPDATE %s SET %I = $1 WHERE tableoid = $2 AND ctid = $3::tid', $1::regclass, a.attname)
                   FROM pg_catalog.pg_attribute a
                  WHERE a.attrelid = $1 AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped",
                Some(1),
                &[table.into(), column.as_str().into()],
            )
            .unwrap_or_else(|e| pgrx::error!("pg_safeguard: looking up the column failed: {e}"));
        if found.is_empty() {
            SafeguardError::new(PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN, "column does not exist")
                .with_detail(format!("The table has no column named {column:?}."))
                .report()
        }
        let row = found.first();
        let type_oid = row.get::<pg_sys::Oid>(1).ok().flatten().unwrap_or(pg_sys::InvalidOid);
        let scan = row.get::<String>(2).ok().flatten().unwrap_or_default();
        let rewrite = row.get::<String>(3).ok().flatten().unwrap_or_default();
        let is_encrypted = client
            .select(
                "SELECT $1 IN ('safeguard.encrypted_text'::regtype, 'safeguard.encrypted_bytea'::regtype,
                               'safeguard.encrypted_jsonb'::regtype)",
                None,
                &[type_oid.into()],
            )
            .ok()
            .and_then(|t| t.first().get_one::<bool>().ok().flatten())
            .unwrap_or(false);
        if !is_encrypted {
            SafeguardError::new(PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH, "column is not of an encrypted type")
                .with_detail("reencrypt() rewrites columns of safeguard.encrypted_text, encrypted_bytea or encrypted_jsonb.")
                .report()
        }
        // (Values under destroyed keys are counted, and warned about, on the nodes.)
        if let Some(rewritten) = reencrypt_citus_table(table, &column, batch_size) {
            return (rewritten, 0);
        }
        let mut cursor = client.open_cursor(scan.as_str(), &[]);
        let (mut rewritten, mut destroyed) = (0i64, 0i64);
        loop {
            let rows = cursor
                .fetch(batch_size as libc::c_long)
                .unwrap_or_else(|e| pgrx::error!("pg_safeguard: reading the table failed: {e}"));
            let fetched = rows.len();
            fn read<T>(e: pgrx::spi::SpiError) -> T {
                pgrx::error!("pg_safeguard: reading a row failed: {e}")
            }
            let mut batch = Vec::with_capacity(fetched);
            for row in rows {
                // NULLs have nothing to rewrite.
                if let Some(value) = row.get::<String>(3).unwrap_or_else(read) {
                    let tableoid = row.get::<pg_sys::Oid>(1).unwrap_or_else(read);
                    let ctid = row.get::<String>(2).unwrap_or_else(read);
                    batch.push((tableoid, ctid, value));
                }
            }
            for (tableoid, ctid, value) in batch {
                let value = envelope::from_text(value.as_bytes())
                    .unwrap_or_else(|_| corrupted("A stored envelope is malformed.").report());
                match rekeyed(&value) {
                    Rekey::Current => {}
                    Rekey::Destroyed => destroyed += 1,
                    Rekey::New(envelope) => {
                        // SAFETY: envelope bytes form a value of the column's type.
                        let value = unsafe { DatumWithOid::new(envelope, type_oid) };
                        client
                            .update(rewrite.as_str(), None, &[value, tableoid.into(), ctid.into()])
                            .unwrap_or_else(|e| pgrx::error!("pg_safeguard: rewriting a value failed: {e}"));
                        rewritten += 1;
                    }
                }
            }
            if fetched < batch_size as usize {
                break;
            }
        }
        (rewritten, destroyed)
    });
    if destroyed > 0 {
        pgrx::warning!("pg_safeguard: {destroyed} values are under destroyed keys and were left as they are");
    }
    rewritten
}

enum Rekey {
    Current,
    Destroyed,
    New(Vec<u8>),
}

/// `value` under the active key of its key's tenant, unless it already is.
fn rekeyed(value: &[u8]) -> Rekey {
    let envelope = parse_stored(value);
    let tenant = match keystore::key_by_id(envelope.key_id).as_ref() {
        DataKey::Usable { tenant, .. } => *tenant,
        DataKey::Destroyed => return Rekey::Destroyed,
    };
    let (active_id, cipher) = keystore::active_key(tenant);
    if active_id == envelope.key_id {
        return Rekey::Current;
    }
    // The re-encryption runs for an administrator, whatever tenant the session has set.
    let plaintext = zeroize::Zeroizing::new(decrypt(value, false));
    Rekey::New(envelope::seal(&cipher, active_id, &tenant_bytes(tenant), &keystore::fresh_nonce(), &plaintext))
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use crate::test_support::one;
    use pgrx::prelude::*;

    fn round_trip_table() {
        Spi::run("SELECT safeguard.create_key()").unwrap();
        Spi::run(
            "CREATE TABLE notes (id int, t safeguard.encrypted_text, b safeguard.encrypted_bytea,
                                 j safeguard.encrypted_jsonb)",
        )
        .unwrap();
        Spi::run("INSERT INTO notes VALUES (1, 'plain text', '\\x0001', '{\"k\": [1, 2]}')").unwrap();
    }

    #[pg_test]
    fn values_round_trip_and_are_stored_as_envelopes() {
        round_trip_table();
        assert_eq!(one::<String>("SELECT safeguard.decrypt(t) FROM notes"), "plain text");
        assert_eq!(one::<Vec<u8>>("SELECT safeguard.decrypt(b) FROM notes"), vec![0, 1]);
        assert_eq!(one::<String>("SELECT safeguard.decrypt(j)::text FROM notes"), r#"{"k": [1, 2]}"#);
        assert!(one::<bool>("SELECT t::text LIKE 'sgenc:%' AND b::text LIKE 'sgenc:%' FROM notes"));
        // Two encryptions of the same value differ (fresh nonce), yet both decrypt.
        assert!(one::<bool>(
            "SELECT 'same'::text::safeguard.encrypted_text::text <> 'same'::text::safeguard.encrypted_text::text"
        ));
    }

    #[pg_test]
    #[should_panic(expected = "the key of this encrypted value was destroyed")]
    fn a_destroyed_key_stops_decrypting_at_once() {
        round_trip_table();
        assert_eq!(one::<String>("SELECT safeguard.decrypt(t) FROM notes"), "plain text");
        Spi::run("SELECT safeguard.destroy_key(safeguard.key_id(t)) FROM notes").unwrap();
        // The cached key was forgotten through the relcache invalidation of the key table.
        one::<String>("SELECT safeguard.decrypt(t) FROM notes");
    }

    #[pg_test]
    fn rotation_keeps_old_values_readable() {
        round_trip_table();
        let old = one::<i32>("SELECT safeguard.key_id(t) FROM notes");
        let new = one::<i32>("SELECT safeguard.rotate_key()");
        assert_ne!(old, new);
        Spi::run("INSERT INTO notes (id, t) VALUES (2, 'after')").unwrap();
        assert_eq!(one::<i32>("SELECT safeguard.key_id(t) FROM notes WHERE id = 2"), new);
        assert_eq!(one::<String>("SELECT safeguard.decrypt(t) FROM notes WHERE id = 1"), "plain text");
        assert_eq!(one::<i64>("SELECT safeguard.reencrypt('notes', 't')"), 1);
        assert_eq!(one::<i64>(&format!("SELECT count(*) FROM notes WHERE safeguard.key_id(t) = {new}")), 2);
    }
}
