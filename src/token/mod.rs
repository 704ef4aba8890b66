//! Verified request context: `safeguard.set_context_from_token(token)` sets the context from a
//! token signed by the identity provider and verified here, and `require_verified_context(role)`
//! makes that the only way a role's context can be set (docs/tenancy.md). Pure parts beside:
//! `jws` (signatures, key sets) and `claims` (registered claims, the claims-to-context mapping).
//!
//! Per backend, the key set is read from `safeguard.jwt_keys_file` once (again after a reload),
//! and a token verified once is remembered by its SHA-256 until it expires, so that a pooled
//! application presenting the same token on every request pays for one signature check.

pub mod claims;
pub mod jws;

use crate::error::{OrReport, SafeguardError};
use crate::gucs;
use claims::{BadClaims, TokenContext};
use jws::{Algorithm, KeySet, Rejected};
use pgrx::prelude::*;
use pgrx::{PgSqlErrorCode, Uuid};
use sha2::{Digest, Sha256};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::rc::Rc;

pgrx::extension_sql_file!(
    "../../sql/token.sql",
    name = "token",
    requires = ["tenancy", _verified_context_roles_changed]
);

/// How many verified tokens a backend remembers.
const CACHE_CAPACITY: usize = 1024;
/// The largest JWKS file read.
const MAX_KEYS_FILE_BYTES: u64 = 1024 * 1024;

#[derive(Default)]
struct Verifier {
    /// The value of GENERATION the state below was built under.
    generation: u64,
    keys: Option<Rc<KeySet>>,
    verified: HashMap<[u8; 32], Rc<TokenContext>>,
}

thread_local! {
    static VERIFIER: RefCell<Verifier> = RefCell::new(Verifier::default());
    /// Bumped when a token setting changes (reload): the key set and the verified tokens go.
    static GENERATION: Cell<u64> = const { Cell::new(1) };
    /// The context the current transaction took from a token (cleared at its end).
    static OF_TRANSACTION: RefCell<Option<Rc<TokenContext>>> = const { RefCell::new(None) };
    /// Whether the current user must take its context from a token: (user, session user,
    /// answer), asked again when the registry or a role membership changes.
    static REQUIRED: Cell<Option<(pg_sys::Oid, pg_sys::Oid, bool)>> = const { Cell::new(None) };
    static REGISTRY_RELID: Cell<pg_sys::Oid> = const { Cell::new(pg_sys::InvalidOid) };
}

/// Called by the token settings' assign hook.
pub fn forget_verified_tokens() {
    GENERATION.set(GENERATION.get() + 1);
}

/// Registers the transaction-end and invalidation callbacks; once per process.
pub fn init() {
    // SAFETY: the callbacks only touch thread-local cells.
    unsafe {
        pg_sys::RegisterXactCallback(Some(on_transaction_end), std::ptr::null_mut());
        pg_sys::CacheRegisterRelcacheCallback(Some(on_relcache_invalidation), pg_sys::Datum::from(0));
        for cache in [pg_sys::SysCacheIdentifier::AUTHOID, pg_sys::SysCacheIdentifier::AUTHMEMROLEMEM, pg_sys::SysCacheIdentifier::AUTHMEMMEMROLE] {
            pg_sys::CacheRegisterSyscacheCallback(cache as i32, Some(on_role_invalidation), pg_sys::Datum::from(0));
        }
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn on_transaction_end(event: pg_sys::XactEvent::Type, _arg: *mut std::ffi::c_void) {
    if matches!(
        event,
        pg_sys::XactEvent::XACT_EVENT_COMMIT
            | pg_sys::XactEvent::XACT_EVENT_ABORT
            | pg_sys::XactEvent::XACT_EVENT_PREPARE
            | pg_sys::XactEvent::XACT_EVENT_PARALLEL_COMMIT
            | pg_sys::XactEvent::XACT_EVENT_PARALLEL_ABORT
    ) {
        OF_TRANSACTION.with_borrow_mut(|context| *context = None);
    }
}

/// The registry changed (or, while it is not known, any table did): ask again.
#[pg_guard]
unsafe extern "C-unwind" fn on_relcache_invalidation(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    let registry = REGISTRY_RELID.get();
    if registry == pg_sys::InvalidOid || relid == pg_sys::InvalidOid || relid == registry {
        REQUIRED.set(None);
    }
}

/// A role or a membership changed (GRANT, REVOKE, ALTER ROLE): ask again.
#[pg_guard]
unsafe extern "C-unwind" fn on_role_invalidation(_arg: pg_sys::Datum, _cache: i32, _hash: u32) {
    REQUIRED.set(None);
}

fn refused(message: impl Into<String>) -> SafeguardError {
    SafeguardError::new(PgSqlErrorCode::ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION, message)
}

fn not_configured(what: &str) -> SafeguardError {
    SafeguardError::new(PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE, "tokens cannot be verified: the server is not configured for them")
        .with_detail(format!("{what} is empty."))
        .with_hint(
            "Set safeguard.jwt_keys_file (the identity provider's JWKS), safeguard.jwt_issuer and safeguard.jwt_audience \
             in postgresql.conf and reload: docs/tenancy.md.",
        )
}

impl From<Rejected> for SafeguardError {
    fn from(rejected: Rejected) -> Self {
        match rejected {
            Rejected::TooLong => refused(format!("token refused: longer than {} bytes", jws::MAX_TOKEN_BYTES)),
            Rejected::Malformed(part) => refused(format!("token refused: malformed {part}"))
                .with_detail("A token is three base64url parts (header, claims, signature) joined by dots; the header and claims are JSON objects."),
            Rejected::AlgorithmRefused(alg) => refused(format!("token refused: algorithm {alg:?} is not accepted"))
                .with_hint("Accepted: the algorithms in safeguard.jwt_algorithms among EdDSA, ES256 and RS256; never none or HMAC."),
            Rejected::CriticalHeader => refused("token refused: its header has critical extensions (crit), which are not supported"),
            Rejected::UnknownKey => refused("token refused: no key of safeguard.jwt_keys_file matches its kid and algorithm")
                .with_hint("After the identity provider rotates its keys, put its new JWKS in the file and reload."),
            Rejected::BadSignature => refused("token refused: the signature does not verify"),
        }
    }
}

impl From<BadClaims> for SafeguardError {
    fn from(bad: BadClaims) -> Self {
        match bad {
            BadClaims::Expired => refused("token refused: expired"),
            BadClaims::NotYetValid => refused("token refused: not valid yet (nbf)"),
            BadClaims::WrongIssuer => refused("token refused: wrong issuer").with_hint("Its iss must equal safeguard.jwt_issuer."),
            BadClaims::WrongAudience => refused("token refused: wrong audience").with_hint("Its aud must be or contain safeguard.jwt_audience."),
            BadClaims::Missing(claim) => refused(format!("token refused: claim \"{claim}\" is missing")),
            BadClaims::Malformed(claim) => SafeguardError::new(
                PgSqlErrorCode::ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION,
                format!("token refused: claim \"{claim}\" is malformed"),
            )
            .with_detail("Context claims must be uuid strings; exp and nbf numbers; iss, sub and jti strings."),
        }
    }
}

/// Reads the JWKS file. Public keys need no secrecy, but whoever may change the file decides
/// which tokens are accepted: it must not be writable by the group or others.
fn read_keys_file(path: &str) -> Result<KeySet, SafeguardError> {
    let unreadable = |e: std::io::Error| {
        SafeguardError::new(PgSqlErrorCode::ERRCODE_UNDEFINED_FILE, "could not read the token keys file")
            .with_detail(format!("The file named by safeguard.jwt_keys_file: {e}."))
    };
    let file = std::fs::File::open(path).map_err(unreadable)?;
    if file.metadata().map_err(unreadable)?.permissions().mode() & 0o022 != 0 {
        return Err(SafeguardError::new(PgSqlErrorCode::ERRCODE_CONFIG_FILE_ERROR, "the token keys file is writable by other OS users")
            .with_detail("Whoever can write it decides which tokens are accepted.")
            .with_hint("chmod go-w it (it holds public keys: reading is fine)."));
    }
    let mut json = Vec::new();
    file.take(MAX_KEYS_FILE_BYTES).read_to_end(&mut json).map_err(unreadable)?;
    KeySet::parse(&json).map_err(|bad| {
        SafeguardError::new(PgSqlErrorCode::ERRCODE_CONFIG_FILE_ERROR, "the token keys file is not a usable JWKS")
            .with_detail(format!("In the file named by safeguard.jwt_keys_file, {}.", bad.0))
    })
}

fn allowed_algorithms(list: &str) -> Result<Vec<Algorithm>, SafeguardError> {
    list.split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(|name| {
            Algorithm::from_name(name).ok_or_else(|| {
                SafeguardError::new(PgSqlErrorCode::ERRCODE_CONFIG_FILE_ERROR, format!("safeguard.jwt_algorithms names {name:?}"))
                    .with_hint("Name some of EdDSA, ES256 and RS256, separated by commas.")
            })
        })
        .collect()
}

fn now_seconds() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// Verifies `token` (or finds it verified before and not expired) and returns its context.
fn verify_token(token: &str) -> Result<Rc<TokenContext>, SafeguardError> {
    let settings = gucs::token_settings();
    let now = now_seconds();
    let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    let generation = GENERATION.get();
    let known = VERIFIER.with_borrow_mut(|verifier| {
        if verifier.generation != generation {
            *verifier = Verifier { generation, ..Verifier::default() };
        }
        verifier.verified.get(&digest).cloned()
    });
    if let Some(context) = known {
        // Checked again on every use: a remembered token stops working when it expires.
        if now < context.expires_at.saturating_add(settings.policy.leeway) {
            return Ok(context);
        }
        return Err(BadClaims::Expired.into());
    }
    for (value, name) in [
        (&settings.keys_file, "safeguard.jwt_keys_file"),
        (&settings.policy.issuer, "safeguard.jwt_issuer"),
        (&settings.policy.audience, "safeguard.jwt_audience"),
    ] {
        if value.is_empty() {
            return Err(not_configured(name));
        }
    }
    let keys = match VERIFIER.with_borrow(|verifier| verifier.keys.clone()) {
        Some(keys) => keys,
        None => {
            let keys = Rc::new(read_keys_file(&settings.keys_file)?);
            VERIFIER.with_borrow_mut(|verifier| verifier.keys = Some(keys.clone()));
            keys
        }
    };
    let verified = jws::verify(token.as_bytes(), &keys, &allowed_algorithms(&settings.algorithms)?)?;
    let context = Rc::new(claims::check(&verified.claims, &settings.policy, now)?);
    VERIFIER.with_borrow_mut(|verifier| {
        if verifier.verified.len() >= CACHE_CAPACITY {
            verifier.verified.retain(|_, known| now < known.expires_at);
            if verifier.verified.len() >= CACHE_CAPACITY {
                verifier.verified.clear();
            }
        }
        verifier.verified.insert(digest, context.clone());
    });
    Ok(context)
}

/// Sets the request context of the current transaction from a token signed by the identity
/// provider: tenant, actor, impersonator and request id from its claims (the request id given
/// here wins over the claim), with the same transaction-local, pool-safe semantics as
/// set_context(). 28000 when the token is refused, 55000 when the server is not configured.
#[pg_extern(volatile, parallel_unsafe)]
fn set_context_from_token(token: Option<&str>, request_id: default!(Option<&str>, "NULL")) {
    let Some(token) = token else {
        refused("token refused: NULL").with_hint("Pass the token the identity provider issued.").report()
    };
    let context = verify_token(token).or_report();
    let request_id = request_id.map(str::to_owned).or_else(|| context.request_id.clone());
    crate::context::write_context(
        context.tenant.map(Uuid::from_bytes),
        context.actor.map(Uuid::from_bytes),
        context.impersonator.map(Uuid::from_bytes),
        request_id.as_deref(),
        Some(crate::context::proof::Verified {
            expires_at: context.expires_at,
            token_id: context.token_id.clone().unwrap_or_default().into_bytes(),
            subject: context.subject.clone().unwrap_or_default().into_bytes(),
        }),
    );
    OF_TRANSACTION.with_borrow_mut(|of_transaction| *of_transaction = Some(context));
}

/// set_context() replaces a context a token set: the token no longer speaks for it.
pub fn forget_transaction_token() {
    OF_TRANSACTION.with_borrow_mut(|of_transaction| *of_transaction = None);
}

/// The token context of the current transaction, for the audit trigger and tests: (token id,
/// subject, expiry) or nothing.
pub fn of_transaction() -> Option<Rc<TokenContext>> {
    OF_TRANSACTION.with_borrow(Clone::clone)
}

/// What the current transaction's context was taken from a token with: its jti, sub and exp.
#[pg_extern(stable, parallel_safe)]
fn _verified_context_of_transaction() -> TableIterator<
    'static,
    (name!(token_id, Option<String>), name!(subject, Option<String>), name!(expires_at, Option<TimestampWithTimeZone>)),
> {
    let rows = of_transaction()
        .map(|context| {
            let expires = TimestampWithTimeZone::try_from(
                (context.expires_at - 946_684_800) * 1_000_000, // PostgreSQL's epoch is 2000-01-01
            )
            .ok();
            (context.token_id.clone(), context.subject.clone(), expires)
        })
        .into_iter()
        .collect::<Vec<_>>();
    TableIterator::new(rows)
}

/// Whether the current user or the session user must take the context from a token
/// (`safeguard.require_verified_context`, also through membership). Superusers never are.
/// Remembered until the registry or a role membership changes.
pub fn verified_context_required() -> bool {
    // SAFETY: plain reads of the backend's identity.
    let (user, session_user) = unsafe { (pg_sys::GetUserId(), pg_sys::GetSessionUserId()) };
    if let Some((for_user, for_session, answer)) = REQUIRED.get() {
        if for_user == user && for_session == session_user {
            return answer;
        }
    }
    let answer = ask_registry(user, session_user);
    REQUIRED.set(Some((user, session_user, answer)));
    answer
}

fn ask_registry(user: pg_sys::Oid, session_user: pg_sys::Oid) -> bool {
    // Both identities are asked about, each unless it is a superuser (a member of every role):
    // a required role's session stays required inside a SECURITY DEFINER function, and a
    // superuser's session that SET ROLEs to a required role is required.
    // SAFETY: reads the roles' superuser flags.
    let askable: Vec<pg_sys::Oid> =
        [user, session_user].into_iter().filter(|&role| !unsafe { pg_sys::superuser_arg(role) }).collect();
    let (Some(&first), Some(&second)) = (askable.first(), askable.last()) else {
        return false;
    };
    Spi::connect(|client| {
        // On a Citus node, where safeguard.citus_setup() made the registry a reference table, its
        // local copy: the question is asked inside queries on shards too, where Citus refuses a
        // distributed query (as for the key table). Found by name each time it is asked
        // (rarely): absent before ALTER EXTENSION ... UPDATE.
        let source = crate::citus::local_copy_of_reference_table(client, "safeguard", "verified_context_roles")
            .unwrap_or_else(|| "safeguard.verified_context_roles".to_owned());
        // The owner is the registry's own (Citus hides its copies from pg_class queries, and
        // gives them the same owner).
        let found = client
            .select(
                "SELECT pg_catalog.to_regclass($1)::oid, c.relowner FROM pg_catalog.pg_class c
                  WHERE c.oid = pg_catalog.to_regclass('safeguard.verified_context_roles')",
                Some(1),
                &[source.as_str().into()],
            )
            .ok()
            .and_then(|rows| rows.first().get_two::<pg_sys::Oid, pg_sys::Oid>().ok())
            .and_then(|(registry, owner)| registry.zip(owner));
        let Some((registry, owner)) = found else {
            REGISTRY_RELID.set(pg_sys::InvalidOid);
            return false;
        };
        REGISTRY_RELID.set(registry);
        // As the registry's owner: the roles it concerns hold no privilege on it. (`source` is
        // a name quoted by format('%I.%I').)
        let _as_owner = crate::as_user::AsUser::switch_to(owner);
        client
            .select(
                &format!(
                    "SELECT EXISTS (SELECT 1 FROM {source} v
                                      JOIN pg_catalog.pg_roles r ON r.oid = v.role_name::oid
                                     WHERE pg_catalog.pg_has_role($1, r.oid, 'MEMBER')
                                        OR pg_catalog.pg_has_role($2, r.oid, 'MEMBER'))"
                ),
                Some(1),
                &[first.into(), second.into()],
            )
            .unwrap_or_else(|e| pgrx::error!("pg_safeguard: reading safeguard.verified_context_roles failed: {e}"))
            .first()
            .get_one::<bool>()
            .ok()
            .flatten()
            .unwrap_or(false)
    })
}

/// Whether a token with this expiry (seconds since the epoch) has expired, with the leeway.
pub fn expired(expires_at: i64) -> bool {
    now_seconds() >= expires_at.saturating_add(gucs::jwt_leeway())
}

/// The error of a context passed on by a Citus coordinator whose token has expired since.
pub fn expired_context_passed_on() -> SafeguardError {
    refused("token refused: expired").with_detail("The request context passed on to this node was set from a token that has expired since.")
}

/// Statement trigger on the registry (AFTER INSERT, UPDATE, DELETE and TRUNCATE): every backend
/// of this node asks it again at its next context. On a Citus cluster Citus copies the trigger
/// onto each node's copy of the registry (a reference table), whose changes it makes.
#[pg_trigger]
fn _verified_context_roles_changed<'a>(
    trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, pgrx::AllocatedByPostgres>>, PgTriggerError> {
    // SAFETY: PostgreSQL hands a trigger its relation; queuing an invalidation of it is plain.
    unsafe { pg_sys::CacheInvalidateRelcacheByRelid((*trigger.trigger_data().tg_relation).rd_id) };
    Ok(None)
}

/// Refuses (42501) a way of setting the context other than a token, for a role that must use
/// one. `how` names it.
pub fn refuse_unverified(how: &str) -> SafeguardError {
    SafeguardError::new(
        PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        format!("{how} is refused: this role must take its request context from a verified token"),
    )
    .with_detail("safeguard.require_verified_context() was called for this role (or a role it belongs to).")
    .with_hint("Call safeguard.set_context_from_token(<token from the identity provider>) instead.")
}
