//! Every setting of the extension, registered here in one place from `_PG_init`.
//!
//! | setting | context | default | meaning |
//! |---|---|---|---|
//! | `safeguard.tenant_setting` | superuser | `safeguard.tenant_id` | the setting `current_tenant()` reads and `set_context()` writes |
//! | `safeguard.actor_setting` | superuser | `safeguard.actor_id` | likewise for the actor |
//! | `safeguard.tenant_id`, `safeguard.actor_id`, `safeguard.impersonator_id`, `safeguard.request_id` | user | empty | the request context; only `set_context()` may set them |
//! | `safeguard.isolation_ddl_hook` | user | on | the DDL event trigger isolates new partitions and tables of auto-isolated schemas |
//! | `safeguard.audit_retention` | superuser | 6 years | the shortest age `audit_purge()` may delete |
//! | `safeguard.tenant_column` | user | `tenant_id` | the tenant column `lint()` looks for first (then organization_id, workspace_id) |
//! | `safeguard.master_key_file` | postgresql.conf (reload) | empty | the file holding the 256-bit master key; its value is shown to superusers only |
//! | `safeguard.master_key_command` | postgresql.conf (reload) | empty | instead of the file: a command that prints the master key (`crypto::key_command`); shown to superusers only |
//! | `safeguard.master_key_command_timeout` | postgresql.conf (reload) | 30 s | how long the command may run before it is killed |
//! | `safeguard.jwt_keys_file` | postgresql.conf (reload) | empty | the JWKS file of the keys that verify tokens (`token`) |
//! | `safeguard.jwt_algorithms` | postgresql.conf (reload) | `EdDSA,ES256,RS256` | the algorithms a token may be signed with |
//! | `safeguard.jwt_issuer`, `safeguard.jwt_audience` | postgresql.conf (reload) | empty | the `iss` and an `aud` a token must have (both required) |
//! | `safeguard.jwt_leeway` | postgresql.conf (reload) | 30 s | clock difference tolerated for `exp` and `nbf` |
//! | `safeguard.jwt_tenant_claim`, `_actor_claim`, `_impersonator_claim`, `_request_id_claim` | postgresql.conf (reload) | `tenant_id`, `sub`, `act.sub`, `jti` | where the context is in a token's claims |
//! | `safeguard.context_proof` | user | empty | the request context sealed for the workers of a Citus cluster (`context::proof`); written by `set_context()`, accepted elsewhere only when sealed with the master key |
//!
//! The two `*_setting` names let an application that already sets its own custom setting
//! (`set_config('app.current_tenant_id', ..., true)`) adopt the extension without code changes.
//! They are superuser-only: otherwise any session could point `current_tenant()` at a setting
//! that the guard below does not cover.
//!
//! The four context settings refuse every write that does not come from `set_context()`, which
//! always writes transaction-locally. A plain `SET safeguard.tenant_id` would outlive the
//! transaction and, behind a connection pool, hand one request's tenant to the next; an
//! `ALTER ROLE ... SET` would give every session a default tenant. Both fail instead.

use crate::context;
use crate::error::SafeguardError;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting, PgSqlErrorCode};
use std::cell::Cell;
use std::ffi::{c_char, c_void, CStr, CString};

pub static TENANT_SETTING: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"safeguard.tenant_id"));
pub static ACTOR_SETTING: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"safeguard.actor_id"));

static TENANT_ID: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static ACTOR_ID: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static IMPERSONATOR_ID: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static REQUEST_ID: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

static CONTEXT_PROOF: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub const CONTEXT_PROOF_SETTING: &CStr = c"safeguard.context_proof";

/// Whether safeguard.context_proof holds a value, read from our own variable: the readers ask on
/// every call made without a local context, where a search of every setting by name would cost
/// what own_context_value() avoids.
pub fn context_proof_is_set() -> bool {
    // SAFETY: the GUC machinery keeps the pointer either NULL or a valid NUL-terminated string.
    let raw = unsafe { *CONTEXT_PROOF.as_ptr() };
    !raw.is_null() && unsafe { *raw } != 0
}

static ISOLATION_DDL_HOOK: GucSetting<bool> = GucSetting::<bool>::new(true);
static AUDIT_RETENTION: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"6 years"));
static MASTER_KEY_FILE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static MASTER_KEY_COMMAND: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static MASTER_KEY_COMMAND_TIMEOUT: GucSetting<i32> = GucSetting::<i32>::new(30);

static JWT_KEYS_FILE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static JWT_ALGORITHMS: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(c"EdDSA,ES256,RS256"));
static JWT_ISSUER: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static JWT_AUDIENCE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static JWT_LEEWAY: GucSetting<i32> = GucSetting::<i32>::new(30);
static JWT_TENANT_CLAIM: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(c"tenant_id"));
static JWT_ACTOR_CLAIM: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(c"sub"));
static JWT_IMPERSONATOR_CLAIM: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(c"act.sub"));
static JWT_REQUEST_ID_CLAIM: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(c"jti"));

fn text_of(setting: &GucSetting<Option<CString>>) -> String {
    setting.get().map(|value| value.to_string_lossy().into_owned()).unwrap_or_default()
}

/// The token settings, read together (src/token): the key set, the allow-list, and what a
/// token must be (`claims::Policy`).
pub struct TokenSettings {
    pub keys_file: String,
    pub algorithms: String,
    pub policy: crate::token::claims::Policy,
}

/// `safeguard.jwt_leeway`, alone: read by every check of a passed-on context's expiry.
pub fn jwt_leeway() -> i64 {
    i64::from(JWT_LEEWAY.get())
}

pub fn token_settings() -> TokenSettings {
    TokenSettings {
        keys_file: text_of(&JWT_KEYS_FILE),
        algorithms: text_of(&JWT_ALGORITHMS),
        policy: crate::token::claims::Policy {
            issuer: text_of(&JWT_ISSUER),
            audience: text_of(&JWT_AUDIENCE),
            leeway: jwt_leeway(),
            tenant_claim: text_of(&JWT_TENANT_CLAIM),
            actor_claim: text_of(&JWT_ACTOR_CLAIM),
            impersonator_claim: text_of(&JWT_IMPERSONATOR_CLAIM),
            request_id_claim: text_of(&JWT_REQUEST_ID_CLAIM),
        },
    }
}

static TENANT_COLUMN: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(c"tenant_id"));

/// The path of the master key file, '' when not configured.
pub fn master_key_file() -> String {
    MASTER_KEY_FILE
        .get()
        .map(|path| path.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The command that prints the master key, '' when not configured.
pub fn master_key_command() -> String {
    MASTER_KEY_COMMAND
        .get()
        .map(|command| command.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// How long the master key command may run.
pub fn master_key_command_timeout() -> std::time::Duration {
    std::time::Duration::from_secs(MASTER_KEY_COMMAND_TIMEOUT.get().max(1) as u64)
}

/// Whether a master key is configured, by a file or a command (whether it can be read is
/// another question, answered at first use).
pub fn master_key_configured() -> bool {
    !master_key_file().is_empty() || !master_key_command().is_empty()
}

pub const IMPERSONATOR_SETTING: &CStr = c"safeguard.impersonator_id";
pub const REQUEST_SETTING: &CStr = c"safeguard.request_id";

/// The current value of a string setting of ours, without copying it. Valid until the setting
/// changes: callers use it at once. The check hooks keep the `*_setting` names non-empty.
pub fn name_in(setting: &GucSetting<Option<CString>>) -> &'static CStr {
    // SAFETY: the GUC machinery keeps the pointer either NULL or a valid NUL-terminated string.
    let raw = unsafe { *setting.as_ptr() };
    if raw.is_null() {
        c""
    } else {
        unsafe { CStr::from_ptr(raw) }
    }
}

/// The value of one of the four context settings when `name` is one of them, read straight from
/// our own variable: GetConfigOption's search of every setting by name cost 13% of an encrypted
/// write. `None` when `name` is not ours (an application's own setting named by
/// `safeguard.tenant_setting`).
pub fn own_context_value(name: &CStr) -> Option<Option<&'static [u8]>> {
    let setting = match name.to_bytes() {
        b"safeguard.tenant_id" => &TENANT_ID,
        b"safeguard.actor_id" => &ACTOR_ID,
        b"safeguard.impersonator_id" => &IMPERSONATOR_ID,
        b"safeguard.request_id" => &REQUEST_ID,
        _ => return None,
    };
    // SAFETY: the GUC machinery keeps the pointer either NULL or a valid NUL-terminated string,
    // valid until the setting changes; callers use it at once.
    let raw = unsafe { *setting.as_ptr() };
    Some((!raw.is_null()).then(|| unsafe { CStr::from_ptr(raw) }.to_bytes()))
}

/// The settings the extension's SQL functions read: the only names `_setting()` answers for.
const READABLE_SETTINGS: [&CStr; 3] =
    [c"safeguard.audit_retention", c"safeguard.isolation_ddl_hook", c"safeguard.tenant_column"];

thread_local! {
    /// Whether the library was loaded by the postmaster (shared_preload_libraries): then every
    /// setting exists from a session's first statement and the message hook runs in every
    /// backend. Backends inherit it from the postmaster when they fork.
    static PRELOADED: Cell<bool> = const { Cell::new(false) };
}

/// The value of one of the extension's settings, for its SQL and PL/pgSQL functions.
///
/// A SQL function that read `current_setting('safeguard.…')` itself depended on whether the
/// session had already loaded the library: in a fresh connection the setting did not exist yet
/// (or was a placeholder any role could have written, even for a superuser-only setting).
/// Calling this C function loads the library first, which registers every setting and settles
/// placeholders with the rights of whoever set them (a non-superuser's value for a
/// superuser-only setting is discarded with a WARNING), so the answer is the same in a fresh
/// session as in any other.
#[pg_extern(stable, parallel_safe, strict)]
fn _setting(name: &str) -> String {
    let Some(setting) = READABLE_SETTINGS.iter().find(|s| s.to_bytes() == name.as_bytes()) else {
        SafeguardError::new(PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT, "not a setting of pg_safeguard")
            .with_hint("safeguard._setting() reads safeguard.audit_retention, isolation_ddl_hook and tenant_column.")
            .report()
    };
    // SAFETY: a registered setting (missing_ok = false raises otherwise); the value is copied at once.
    unsafe {
        let value = pg_sys::GetConfigOption(setting.as_ptr(), false, false);
        if value.is_null() {
            String::new()
        } else {
            CStr::from_ptr(value).to_string_lossy().into_owned()
        }
    }
}

/// Whether pg_safeguard is in shared_preload_libraries (lint reports it when it is not).
#[pg_extern(stable, parallel_safe)]
fn _preloaded() -> bool {
    PRELOADED.get()
}

/// Registers the extension's settings; called once per process from `_PG_init`.
pub fn init() {
    // SAFETY: a plain global that PostgreSQL sets while the postmaster loads preload libraries.
    PRELOADED.set(unsafe { pg_sys::process_shared_preload_libraries_in_progress });
    // SAFETY: the hooks are #[pg_guard]ed and only read their arguments.
    unsafe {
        GucRegistry::define_string_guc_with_hooks(
            c"safeguard.tenant_setting",
            c"Name of the setting that holds the current tenant id.",
            c"safeguard.current_tenant() reads it and safeguard.set_context() writes it. Point it at \
              the setting an application already uses, e.g. app.current_tenant_id.",
            &TENANT_SETTING,
            GucContext::Suset,
            GucFlags::default(),
            Some(check_setting_name),
            None,
            None,
        );
        GucRegistry::define_string_guc_with_hooks(
            c"safeguard.actor_setting",
            c"Name of the setting that holds the current actor (application user) id.",
            c"safeguard.current_actor() reads it and safeguard.set_context() writes it.",
            &ACTOR_SETTING,
            GucContext::Suset,
            GucFlags::default(),
            Some(check_setting_name),
            None,
            None,
        );
        for (name, setting, description) in [
            (
                c"safeguard.tenant_id",
                &TENANT_ID,
                c"The tenant of the current transaction.",
            ),
            (
                c"safeguard.actor_id",
                &ACTOR_ID,
                c"The application user of the current transaction.",
            ),
            (
                IMPERSONATOR_SETTING,
                &IMPERSONATOR_ID,
                c"Who acts on the actor's behalf, if anyone.",
            ),
            (
                REQUEST_SETTING,
                &REQUEST_ID,
                c"The application's request id for the current transaction.",
            ),
        ] {
            GucRegistry::define_string_guc_with_hooks(
                name,
                description,
                c"Set only by safeguard.set_context(), for the current transaction.",
                setting,
                GucContext::Userset,
                GucFlags::DISALLOW_IN_FILE | GucFlags::DISALLOW_IN_AUTO_FILE,
                Some(check_context_write),
                None,
                None,
            );
        }
    }
    GucRegistry::define_bool_guc(
        c"safeguard.isolation_ddl_hook",
        c"Whether the DDL event trigger isolates new partitions and new tables of auto-isolated schemas.",
        c"The isolation helpers turn it off for their own DDL. Turning it off in a session is like \
          not calling safeguard.isolate() on the tables that session creates.",
        &ISOLATION_DDL_HOOK,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"safeguard.audit_retention",
        c"The shortest age of audit entries that safeguard.audit_purge() may delete.",
        c"An interval; HIPAA asks for six years. audit_purge() refuses anything shorter (22023).",
        &AUDIT_RETENTION,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"safeguard.tenant_column",
        c"The name of the tenant column that safeguard.lint() looks for first.",
        c"Tables with a column of this name (or organization_id, workspace_id) are tenant-scoped for the review.",
        &TENANT_COLUMN,
        GucContext::Userset,
        GucFlags::default(),
    );
    // SAFETY: the assign hook only bumps a thread-local counter.
    unsafe {
        GucRegistry::define_string_guc_with_hooks(
            c"safeguard.master_key_file",
            c"File holding the 256-bit master key of encrypted columns (64 hex digits or base64).",
            c"Read by the server's OS user, which must be the file's only reader (mode 0600). Data keys \
              are stored wrapped under it; the key itself never enters the database.",
            &MASTER_KEY_FILE,
            GucContext::Sighup,
            GucFlags::SUPERUSER_ONLY,
            None,
            Some(master_key_file_changed),
            None,
        );
    }
    // SAFETY: the check hook only parses its argument; the assign hook bumps a counter.
    unsafe {
        GucRegistry::define_string_guc_with_hooks(
            c"safeguard.master_key_command",
            c"Command that prints the 256-bit master key (64 hex digits or base64), instead of a key file.",
            c"Run by /bin/sh as the server's OS user: once at server start when pg_safeguard is in \
              shared_preload_libraries, otherwise by each backend at first use. %d is replaced by the \
              data directory, %% by %. What it prints is never logged.",
            &MASTER_KEY_COMMAND,
            GucContext::Sighup,
            GucFlags::SUPERUSER_ONLY,
            Some(check_master_key_command),
            Some(master_key_file_changed),
            None,
        );
    }
    GucRegistry::define_int_guc(
        c"safeguard.master_key_command_timeout",
        c"Seconds the master key command may run before it is killed.",
        c"A key service that does not answer in time gives a clear error instead of a hung server start or session.",
        &MASTER_KEY_COMMAND_TIMEOUT,
        1,
        3600,
        GucContext::Sighup,
        GucFlags::SUPERUSER_ONLY | GucFlags::UNIT_S,
    );
    define_token_settings();
    // After safeguard.master_key_file: when the library loads in a backend that already holds a
    // value (Citus sends SET LOCAL before anything has loaded it), the check below reads the key.
    // SAFETY: the check hook reads its argument and, for a value not written by set_context(),
    // the master key (crypto::keystore), without raising.
    unsafe {
        GucRegistry::define_string_guc_with_hooks(
            CONTEXT_PROOF_SETTING,
            c"The request context sealed for the other nodes of a Citus cluster.",
            c"Written by safeguard.set_context() on a Citus coordinator and sent by Citus to the workers \
              of the same distributed transaction; accepted only when sealed with this cluster's master key.",
            &CONTEXT_PROOF,
            GucContext::Userset,
            GucFlags::DISALLOW_IN_FILE | GucFlags::DISALLOW_IN_AUTO_FILE,
            Some(check_context_proof),
            None,
            None,
        );
    }
    // After every definition: from now on a misspelt safeguard.* setting is an error.
    unsafe { pg_sys::MarkGUCPrefixReserved(c"safeguard".as_ptr()) };
}

/// The settings of the verified request context (src/token). All are superuser-only and set in
/// postgresql.conf: a role that could change them could accept its own tokens.
fn define_token_settings() {
    let strings: [(&CStr, &CStr, &CStr, &'static GucSetting<Option<CString>>); 8] = [
        (
            c"safeguard.jwt_keys_file",
            c"JWKS file with the public keys that verify tokens (set_context_from_token).",
            c"A JSON Web Key Set (OKP Ed25519, EC P-256, RSA of 2048 bits or more), selected by kid; read again after a reload.",
            &JWT_KEYS_FILE,
        ),
        (
            c"safeguard.jwt_algorithms",
            c"Comma-separated signature algorithms a token may use: EdDSA, ES256, RS256.",
            c"none and HMAC algorithms are never accepted.",
            &JWT_ALGORITHMS,
        ),
        (c"safeguard.jwt_issuer", c"The iss claim a token must have.", c"Required: tokens are refused while it is empty.", &JWT_ISSUER),
        (
            c"safeguard.jwt_audience",
            c"A value the aud claim of a token must have (or contain).",
            c"Required: tokens are refused while it is empty.",
            &JWT_AUDIENCE,
        ),
        (c"safeguard.jwt_tenant_claim", c"The claim holding the tenant id (a uuid); dots reach into objects.", c"", &JWT_TENANT_CLAIM),
        (c"safeguard.jwt_actor_claim", c"The claim holding the actor id (a uuid).", c"", &JWT_ACTOR_CLAIM),
        (
            c"safeguard.jwt_impersonator_claim",
            c"The claim holding the impersonator id (a uuid); act.sub is RFC 8693's actor claim.",
            c"",
            &JWT_IMPERSONATOR_CLAIM,
        ),
        (c"safeguard.jwt_request_id_claim", c"The claim whose text becomes the request id when the call gives none.", c"", &JWT_REQUEST_ID_CLAIM),
    ];
    for (name, short, long, setting) in strings {
        // SAFETY: the assign hook only bumps a thread-local counter.
        unsafe {
            GucRegistry::define_string_guc_with_hooks(
                name,
                short,
                long,
                setting,
                GucContext::Sighup,
                GucFlags::default(),
                None,
                Some(token_setting_changed),
                None,
            );
        }
    }
    GucRegistry::define_int_guc(
        c"safeguard.jwt_leeway",
        c"Seconds of clock difference tolerated for a token's exp and nbf.",
        c"",
        &JWT_LEEWAY,
        0,
        600,
        GucContext::Sighup,
        GucFlags::UNIT_S,
    );
}

/// A reload that changes a token setting forgets the verified tokens and the key set.
#[pgrx::pg_guard]
unsafe extern "C-unwind" fn token_setting_changed(_newval: *const c_char, _extra: *mut c_void) {
    crate::token::forget_verified_tokens();
}

/// A reload may point the setting at another key: every cached key is forgotten, the next use
/// reads the file again.
#[pgrx::pg_guard]
unsafe extern "C-unwind" fn master_key_file_changed(_newval: *const c_char, _extra: *mut c_void) {
    crate::crypto::keystore::forget_all();
}

/// A master key command must use only the placeholders that exist: a typo is refused when the
/// setting is written (ALTER SYSTEM) or reloaded, not at the first use of a key.
#[pgrx::pg_guard]
unsafe extern "C-unwind" fn check_master_key_command(
    newval: *mut *mut c_char,
    _extra: *mut *mut c_void,
    _source: pg_sys::GucSource::Type,
) -> bool {
    let value = unsafe { *newval };
    if value.is_null() {
        return true;
    }
    let command = unsafe { CStr::from_ptr(value) }.to_string_lossy();
    match crate::crypto::key_command::expand(&command, "") {
        Ok(_) => true,
        Err(_) => unsafe {
            reject(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                c"safeguard.master_key_command has an unknown placeholder",
                c"%d stands for the data directory and %% for a percent sign; no other % placeholder exists.",
            )
        },
    }
}

/// Reports a rejected setting value the way PostgreSQL's own check hooks do.
unsafe fn reject(code: pgrx::PgSqlErrorCode, message: &CStr, hint: &CStr) -> bool {
    unsafe {
        pg_sys::GUC_check_errcode(code as i32);
        pg_sys::GUC_check_errmsg_string = pg_sys::pstrdup(message.as_ptr());
        pg_sys::GUC_check_errhint_string = pg_sys::pstrdup(hint.as_ptr());
    }
    false
}

/// The value a context setting is being given, unless it is accepted whatever it is: clearing
/// (RESET, DISCARD ALL and the end of a transaction restore the empty default), set_context()
/// writing it, or a parallel worker receiving its leader's values while it starts.
///
/// # Safety
/// `newval` is a check hook's argument.
unsafe fn value_to_check(newval: *mut *mut c_char) -> Option<&'static CStr> {
    let value = unsafe { *newval };
    if value.is_null() || unsafe { *value } == 0 {
        return None;
    }
    if context::setting_in_progress() || unsafe { pg_sys::InitializingParallelWorker } {
        return None;
    }
    Some(unsafe { CStr::from_ptr(value) })
}

/// The context settings accept a value only from set_context().
#[pgrx::pg_guard]
unsafe extern "C-unwind" fn check_context_write(
    newval: *mut *mut c_char,
    _extra: *mut *mut c_void,
    _source: pg_sys::GucSource::Type,
) -> bool {
    if unsafe { value_to_check(newval) }.is_none() {
        return true;
    }
    unsafe {
        reject(
            pgrx::PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            c"the request context can only be set by safeguard.set_context()",
            c"Call SELECT safeguard.set_context(tenant_id => ...) inside the transaction: it lasts \
              until COMMIT or ROLLBACK, so a pooled connection never carries it to the next request.",
        )
    }
}

/// A sealed context is accepted from set_context(), and from anywhere else (Citus sending it to a
/// worker) only when its seal is this cluster's: a worker cannot tell Citus's connections from a
/// client's, so the value has to prove where it came from.
#[pgrx::pg_guard]
unsafe extern "C-unwind" fn check_context_proof(
    newval: *mut *mut c_char,
    _extra: *mut *mut c_void,
    _source: pg_sys::GucSource::Type,
) -> bool {
    let Some(text) = (unsafe { value_to_check(newval) }) else {
        return true;
    };
    let Ok(master) = crate::crypto::keystore::try_master_key() else {
        return unsafe {
            reject(
                pgrx::PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                c"safeguard.context_proof cannot be checked: this node has no usable master key",
                c"Every node of a Citus cluster needs the same safeguard.master_key_file.",
            )
        };
    };
    match context::proof::open(&master, text.to_bytes()) {
        Ok(_) => true,
        Err(context::proof::BadProof::Malformed) => unsafe {
            reject(
                pgrx::PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                c"safeguard.context_proof does not hold a request context sealed by safeguard.set_context()",
                c"Call safeguard.set_context() on the coordinator: Citus passes the context on to the workers.",
            )
        },
        Err(context::proof::BadProof::Forged) => unsafe {
            reject(
                pgrx::PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                c"safeguard.context_proof is not sealed with this cluster's master key",
                c"Every node of a Citus cluster needs the same safeguard.master_key_file.",
            )
        },
    }
}

/// `*_setting` must name a custom setting: a dotted name of letters, digits and underscores.
#[pgrx::pg_guard]
unsafe extern "C-unwind" fn check_setting_name(
    newval: *mut *mut c_char,
    _extra: *mut *mut c_void,
    _source: pg_sys::GucSource::Type,
) -> bool {
    let value = unsafe { *newval };
    let name = if value.is_null() {
        &[][..]
    } else {
        unsafe { CStr::from_ptr(value) }.to_bytes()
    };
    if context::is_custom_setting_name(name) {
        return true;
    }
    unsafe {
        reject(
            pgrx::PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            c"the value must name a custom setting, such as app.current_tenant_id",
            c"A custom setting name has a prefix and a name separated by a dot, made of letters, \
              digits and underscores.",
        )
    }
}
