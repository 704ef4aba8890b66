//! Request context: who the current transaction works for (tenant), who acts (actor), on whose
//! behalf (impersonator) and for which request. Tenancy policies, the audit trail and encryption
//! read it. It lives in settings written transaction-locally, so it ends at COMMIT or ROLLBACK
//! and a pooled connection never carries one request's context into the next.

pub mod parse;
pub mod proof;
mod scope;

use crate::error::{OrReport, SafeguardError};
use crate::gucs;
use parse::{parse_context_id, uuid_text, MalformedId};
use pgrx::prelude::*;
use pgrx::{PgSqlErrorCode, Uuid};
use std::cell::Cell;
use std::ffi::{CStr, CString};

thread_local! {
    /// True while set_context() writes the settings: the settings' check hook admits only that.
    static SETTING_IN_PROGRESS: Cell<bool> = const { Cell::new(false) };
}

pub fn setting_in_progress() -> bool {
    SETTING_IN_PROGRESS.get()
}


/// A custom setting name: `prefix.name`, letters, digits, underscores and dots, at most 63 bytes.
pub fn is_custom_setting_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.contains(&b'.')
        && name.first() != Some(&b'.')
        && name.last() != Some(&b'.')
        && name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
}

/// Writes `value` ('' for none) into `name` for the current transaction only: what
/// `set_config(name, value, true)` does, without going through SQL. A value the setting already
/// has is not written again: that keeps set_context() as cheap as one set_config() call when
/// most of the context stays empty.
fn set_local(name: &CStr, value: &CStr) {
    // Only the extension's own settings: an adopted one holding the same value may hold it for
    // the session, and this write is what makes it the transaction's.
    if gucs::own_context_value(name).is_some_and(|current| current.unwrap_or_default() == value.to_bytes()) {
        return;
    }
    // SAFETY: both strings are valid and NUL-terminated; errors are raised as PostgreSQL errors.
    unsafe {
        pg_sys::set_config_option(
            name.as_ptr(),
            value.as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_LOCAL,
            true,
            pgrx::PgLogLevel::ERROR as i32,
            false,
        );
    }
}

/// A uuid as the NUL-terminated text written into a setting; NULL as ''.
fn id_value(id: Option<Uuid>) -> [u8; 37] {
    let mut value = [0u8; 37];
    if let Some(id) = id {
        value[..36].copy_from_slice(&uuid_text(id.as_bytes()));
    }
    value
}

fn as_cstr(value: &[u8; 37]) -> &CStr {
    CStr::from_bytes_until_nul(value).unwrap_or(c"")
}

/// The raw text of a setting, if it exists and is set. An application's own setting (adopted
/// with safeguard.tenant_setting or actor_setting) counts only when its value was written for
/// this transaction: a session-level value is an error, never a context.
fn read_setting(name: &CStr) -> Option<&'static [u8]> {
    if let Some(value) = gucs::own_context_value(name) {
        return value;
    }
    // SAFETY: GetConfigOption returns NULL or a string owned by the GUC machinery, valid until
    // the setting changes; callers copy what they need before running any other code.
    let value = unsafe { pg_sys::GetConfigOption(name.as_ptr(), true, false) };
    let value = (!value.is_null()).then(|| unsafe { CStr::from_ptr(value) }.to_bytes());
    if value.is_some_and(|value| !value.is_empty()) && !scope::value_ends_with_transaction(name) {
        session_level_setting(name).report();
    }
    value
}

fn session_level_setting(name: &CStr) -> SafeguardError {
    let name = name.to_string_lossy();
    SafeguardError::new(
        PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        format!("setting \"{name}\" holds a value for the whole session, not for this transaction"),
    )
    .with_detail(
        "A value written by SET, set_config(..., false) or ALTER ROLE/DATABASE ... SET stays on the \
         connection after COMMIT, and a connection pool would hand it to the next request.",
    )
    .with_hint(format!(
        "Write it inside each transaction with set_config('{name}', ..., true) or SET LOCAL, or \
         call safeguard.set_context(); RESET {name} clears the session's value."
    ))
}

struct MalformedSetting<'a> {
    what: &'a str,
    setting: &'a CStr,
}

impl From<MalformedSetting<'_>> for SafeguardError {
    fn from(error: MalformedSetting<'_>) -> Self {
        SafeguardError::new(
            PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION,
            format!(
                "invalid {} id in setting \"{}\"",
                error.what,
                error.setting.to_string_lossy()
            ),
        )
        .with_detail("The setting holds text that is not a uuid.")
        .with_hint("Set the context with safeguard.set_context(), which takes uuid values.")
    }
}

fn read_id(what: &str, setting: &CStr) -> Option<Uuid> {
    parse_context_id(read_setting(setting))
        .map_err(|MalformedId| MalformedSetting { what, setting })
        .or_report()
        .map(Uuid::from_bytes)
}

/// Sets the request context for the current transaction only. Outside a transaction block it
/// applies to the statement's own implicit transaction (and to the statements sent with it in the
/// same simple-query message). NULL clears a field.
/// Refused (42501) for a role that must take its context from a verified token
/// (`safeguard.require_verified_context`): set_context_from_token() is its way.
#[pg_extern(volatile, parallel_unsafe)]
fn set_context(
    tenant_id: Option<Uuid>,
    actor_id: default!(Option<Uuid>, "NULL"),
    impersonator_id: default!(Option<Uuid>, "NULL"),
    request_id: default!(Option<&str>, "NULL"),
) {
    if crate::token::verified_context_required() {
        crate::token::refuse_unverified("safeguard.set_context()").report();
    }
    crate::token::forget_transaction_token();
    write_context(tenant_id, actor_id, impersonator_id, request_id, None);
}

/// Writes the request context for the current transaction: set_context(), and
/// set_context_from_token() with what its token adds (`verified`), which goes to the workers of
/// a Citus cluster with the context.
pub(crate) fn write_context(
    tenant_id: Option<Uuid>,
    actor_id: Option<Uuid>,
    impersonator_id: Option<Uuid>,
    request_id: Option<&str>,
    verified: Option<proof::Verified>,
) {
    let request_id = CString::new(request_id.unwrap_or("")).unwrap_or_default();
    let _writing = crate::scoped_flag::Raised::raise(&SETTING_IN_PROGRESS);
    set_local(
        gucs::name_in(&gucs::TENANT_SETTING),
        as_cstr(&id_value(tenant_id)),
    );
    set_local(
        gucs::name_in(&gucs::ACTOR_SETTING),
        as_cstr(&id_value(actor_id)),
    );
    set_local(
        gucs::IMPERSONATOR_SETTING,
        as_cstr(&id_value(impersonator_id)),
    );
    set_local(gucs::REQUEST_SETTING, &request_id);
    pass_on_to_citus_workers(proof::Context {
        tenant: tenant_id.map(|id| *id.as_bytes()),
        actor: actor_id.map(|id| *id.as_bytes()),
        impersonator: impersonator_id.map(|id| *id.as_bytes()),
        request_id: request_id.into_bytes(),
        verified,
    });
}

/// On a Citus coordinator, the context also goes, sealed, into safeguard.context_proof with
/// SET LOCAL, which Citus sends to every worker of this distributed transaction (it propagates
/// SET LOCAL once citus.propagate_set_commands is 'local', set here for this transaction only).
/// Without a master key the workers get no context: distributed tables then show no row and
/// refuse every write (docs/citus.md).
fn pass_on_to_citus_workers(context: proof::Context) {
    // SAFETY: looks a setting up by name; NULL when Citus is not loaded in this server.
    let propagation = unsafe { pg_sys::GetConfigOption(c"citus.propagate_set_commands".as_ptr(), true, false) };
    if propagation.is_null() || !gucs::master_key_configured() {
        return;
    }
    // SAFETY: a catalog lookup by name.
    if unsafe { pg_sys::get_extension_oid(c"citus".as_ptr(), true) } == pg_sys::InvalidOid {
        return;
    }
    let sealed = proof::seal(&crate::crypto::keystore::master_key(), &context);
    // SAFETY: `propagation` is a valid string owned by the GUC machinery.
    if unsafe { CStr::from_ptr(propagation) }.to_bytes() != b"local" {
        Spi::run("SET LOCAL citus.propagate_set_commands = 'local'")
            .unwrap_or_else(|e| pgrx::error!("pg_safeguard: turning on Citus's SET LOCAL propagation failed: {e}"));
    }
    // The value is hex: nothing to quote.
    Spi::run(&format!("SET LOCAL safeguard.context_proof = '{sealed}'"))
        .unwrap_or_else(|e| pgrx::error!("pg_safeguard: passing the context on to Citus failed: {e}"));
}

thread_local! {
    /// The last sealed context read, by its text: a worker reads the same one for every row.
    static LAST_PROOF: std::cell::RefCell<(Vec<u8>, proof::Context)> =
        std::cell::RefCell::new((Vec::new(), proof::Context::default()));
}

/// The context Citus passed to this node with this transaction, if any (its seal was checked
/// when it was set).
fn passed_on() -> Option<proof::Context> {
    if !gucs::context_proof_is_set() {
        return None;
    }
    // Through read_setting: a session-level value is refused there, as for every context setting.
    let text = read_setting(gucs::CONTEXT_PROOF_SETTING).filter(|text| !text.is_empty())?;
    LAST_PROOF.with_borrow_mut(|(last_text, last)| {
        if last_text.as_slice() != text {
            *last = proof::read(text)
                .map_err(|_| {
                    SafeguardError::new(
                        PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                        "safeguard.context_proof does not hold a request context sealed by safeguard.set_context()",
                    )
                })
                .or_report();
            *last_text = text.to_vec();
        }
        Some(last.clone())
    })
}

/// For a role that must take its context from a verified token, a context id is accepted only
/// when a token set it in this transaction: one written another way (the adopted application
/// setting, written by the application itself) is refused (42501), not used.
fn verified(value: Option<Uuid>, of_token: impl FnOnce(&crate::token::claims::TokenContext) -> Option<[u8; 16]>) -> Option<Uuid> {
    if value.is_some() && crate::token::verified_context_required() {
        let from_token = crate::token::of_transaction().and_then(|context| of_token(&context));
        if from_token.map(Uuid::from_bytes) != value {
            crate::token::refuse_unverified("a request context not set from a verified token").report();
        }
    }
    value
}

/// The context Citus passed to this node, as a role that must use tokens may take it: only
/// when a verified token set it on the coordinator, and until that token expires (a sealed value
/// seen and sent again is then worth what the token was, no more).
fn passed_on_checked() -> Option<proof::Context> {
    let context = passed_on()?;
    if crate::token::verified_context_required() {
        match &context.verified {
            None => crate::token::refuse_unverified("a request context passed on without a verified token").report(),
            Some(token) if crate::token::expired(token.expires_at) => crate::token::expired_context_passed_on().report(),
            Some(_) => {}
        }
    }
    Some(context)
}

/// The id (`jti`) and subject (`sub`) of the token that set the current context, for the audit
/// log: this transaction's set_context_from_token() while the context is still the one it set
/// (a later set_context(), or a rolled-back savepoint, leaves another), or on a Citus worker the
/// token the sealed context says set it. (None, None) when no token did.
pub(crate) fn current_token() -> (Option<String>, Option<String>) {
    let non_empty = |text: Vec<u8>| (!text.is_empty()).then(|| String::from_utf8_lossy(&text).into_owned());
    if let Some(token) = crate::token::of_transaction() {
        let tenant = read_id("tenant", gucs::name_in(&gucs::TENANT_SETTING));
        let actor = read_id("actor", gucs::name_in(&gucs::ACTOR_SETTING));
        if tenant.map(|id| *id.as_bytes()) == token.tenant && actor.map(|id| *id.as_bytes()) == token.actor {
            return (token.token_id.clone(), token.subject.clone());
        }
        return (None, None);
    }
    match passed_on().and_then(|context| context.verified) {
        Some(verified) => (non_empty(verified.token_id), non_empty(verified.subject)),
        None => (None, None),
    }
}

/// The tenant of the current transaction, or NULL when none is set.
#[pg_extern(stable, parallel_safe)]
pub(crate) fn current_tenant() -> Option<Uuid> {
    match read_id("tenant", gucs::name_in(&gucs::TENANT_SETTING)) {
        Some(tenant) => verified(Some(tenant), |token| token.tenant),
        None => passed_on_checked()?.tenant.map(Uuid::from_bytes),
    }
}

/// The application user of the current transaction, or NULL.
#[pg_extern(stable, parallel_safe)]
pub(crate) fn current_actor() -> Option<Uuid> {
    match read_id("actor", gucs::name_in(&gucs::ACTOR_SETTING)) {
        Some(actor) => verified(Some(actor), |token| token.actor),
        None => passed_on_checked()?.actor.map(Uuid::from_bytes),
    }
}

/// Who acts on the actor's behalf (support staff, a proxy), or NULL.
#[pg_extern(stable, parallel_safe)]
pub(crate) fn current_impersonator() -> Option<Uuid> {
    match read_id("impersonator", gucs::IMPERSONATOR_SETTING) {
        Some(impersonator) => verified(Some(impersonator), |token| token.impersonator),
        None => passed_on_checked()?.impersonator.map(Uuid::from_bytes),
    }
}

/// The application's request id for the current transaction, or NULL.
#[pg_extern(stable, parallel_safe)]
pub(crate) fn current_request_id() -> Option<String> {
    read_setting(gucs::REQUEST_SETTING)
        .filter(|value| !value.is_empty())
        .map(|value| String::from_utf8_lossy(value).into_owned())
        .or_else(|| {
            let request_id = passed_on_checked()?.request_id;
            (!request_id.is_empty()).then(|| String::from_utf8_lossy(&request_id).into_owned())
        })
}

#[cfg(test)]
mod unit_tests {
    use super::is_custom_setting_name;

    #[test]
    fn custom_setting_names() {
        assert!(is_custom_setting_name(b"app.current_tenant_id"));
        assert!(is_custom_setting_name(b"safeguard.tenant_id"));
        assert!(!is_custom_setting_name(b""));
        assert!(!is_custom_setting_name(b"work_mem"));
        assert!(!is_custom_setting_name(b".x"));
        assert!(!is_custom_setting_name(b"x."));
        assert!(!is_custom_setting_name(b"app.x; DROP TABLE y"));
        assert!(!is_custom_setting_name(&[b'a'; 64]));
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    fn text(sql: &str) -> Option<String> {
        Spi::get_one::<String>(sql).expect("query failed")
    }

    #[pg_test]
    fn context_is_visible_in_its_transaction() {
        assert_eq!(text("SELECT safeguard.current_tenant()::text"), None);
        Spi::run(
            "SELECT safeguard.set_context('0000000a-0000-4000-8000-000000000001',
                                          request_id => 'req-1')",
        )
        .unwrap();
        assert_eq!(
            text("SELECT safeguard.current_tenant()::text").as_deref(),
            Some("0000000a-0000-4000-8000-000000000001")
        );
        assert_eq!(text("SELECT safeguard.current_actor()::text"), None);
        assert_eq!(
            text("SELECT safeguard.current_request_id()").as_deref(),
            Some("req-1")
        );
        Spi::run("SELECT safeguard.set_context(NULL)").unwrap();
        assert_eq!(text("SELECT safeguard.current_tenant()::text"), None);
        assert_eq!(text("SELECT safeguard.current_request_id()"), None);
    }

    #[pg_test(error = "the request context can only be set by safeguard.set_context()")]
    fn context_settings_refuse_other_writers() {
        Spi::run("SELECT set_config('safeguard.tenant_id', '0000000a-0000-4000-8000-000000000001', true)")
            .unwrap();
    }

    #[pg_test(error = "invalid tenant id in setting \"app.tenant\"")]
    fn malformed_adopted_setting_is_an_error() {
        Spi::run("SET LOCAL safeguard.tenant_setting = 'app.tenant'").unwrap();
        Spi::run("SELECT set_config('app.tenant', 'not-a-uuid', true)").unwrap();
        Spi::run("SELECT safeguard.current_tenant()").unwrap();
    }
}
