//! Where keys come from, per backend: the master key read from `safeguard.master_key_file` or
//! printed by `safeguard.master_key_command` (run once by the postmaster when preloaded), data
//! keys read from `safeguard.key_store` (wrapped under the master key) and unwrapped once, and the
//! blind-index keys derived from the master key. All of it is cached for the life of the backend
//! and forgotten when it may be stale:
//! - a change to the key table (create, rotate, destroy, shred) sends a relcache invalidation for
//!   it at commit; every backend's callback bumps a generation counter and the next use reloads,
//!   so a destroyed key stops decrypting everywhere from the next transaction on;
//! - a change of `safeguard.master_key_file` or `_command` (reload) forgets the master key and all
//!   keys.
//!
//! The key table is read and written as its owner: application roles hold no privilege on it.

use super::envelope;
use super::key_command;
use super::keys::{self, BadKeyFile, Key};
use super::protected::ProtectedKey;
use crate::as_user::AsUser;
use crate::error::SafeguardError;
use aes_gcm::Aes256Gcm;
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::{PgSqlErrorCode, Uuid};
use rand_chacha::ChaCha20Rng;
use rand_core::RngCore;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::rc::Rc;

/// The 16 tenant bytes bound into envelopes and wrapped keys; all zero for the global key.
pub type TenantBytes = [u8; 16];
pub const GLOBAL: TenantBytes = [0u8; 16];

pub fn tenant_bytes(tenant: Option<Uuid>) -> TenantBytes {
    tenant.map_or(GLOBAL, |t| *t.as_bytes())
}

pub const MASTER_KEY_SETTING: &str = "safeguard.master_key_file";
pub const MASTER_KEY_COMMAND_SETTING: &str = "safeguard.master_key_command";

/// A data key as this backend knows it.
pub enum DataKey {
    Usable { tenant: Option<Uuid>, cipher: Rc<Aes256Gcm> },
    Destroyed,
}

#[derive(Default)]
struct Cache {
    /// The value of `GENERATION` the cached keys were loaded under.
    generation: u64,
    master: Option<Rc<ProtectedKey>>,
    by_id: HashMap<u32, Rc<DataKey>>,
    /// Tenant → id of its active key.
    active: HashMap<Option<Uuid>, u32>,
    /// The last active key handed out: a run of writes for one tenant skips the hash lookups.
    last_active: Option<(Option<Uuid>, u32, Rc<Aes256Gcm>)>,
    /// The last key looked up by id: likewise for a scan that decrypts one tenant's values.
    last_by_id: Option<(u32, Rc<DataKey>)>,
    blind: HashMap<(Option<Uuid>, Vec<u8>), Rc<Key>>,
    /// Nonce generator and the process that seeded it (a forked child reseeds).
    rng: Option<(i32, ChaCha20Rng)>,
    /// The key table and its owner.
    store: Option<(pg_sys::Oid, pg_sys::Oid)>,
    /// The relation key reads go to (`key_source()`).
    source: Option<Rc<str>>,
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache::default());
    /// Bumped by the invalidation callback and the setting's assign hook. Kept out of CACHE so the
    /// callback, which PostgreSQL may run in the middle of our own SPI calls, never borrows it.
    static GENERATION: Cell<u64> = const { Cell::new(1) };
    static KEY_STORE_RELID: Cell<pg_sys::Oid> = const { Cell::new(pg_sys::InvalidOid) };
    /// The master key the postmaster obtained from the command at start, with the command it ran:
    /// every backend forked from it inherits this, and uses it while the setting still names
    /// that command.
    static FROM_SERVER_START: RefCell<Option<(String, Rc<ProtectedKey>)>> = const { RefCell::new(None) };
}

/// Registers the invalidation callback; called once per process from `_PG_init`.
pub fn init() {
    // SAFETY: the callback only touches thread-local cells.
    unsafe { pg_sys::CacheRegisterRelcacheCallback(Some(on_relcache_invalidation), pg_sys::Datum::from(0)) };
}

#[pg_guard]
unsafe extern "C-unwind" fn on_relcache_invalidation(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    let store = KEY_STORE_RELID.get();
    if relid == pg_sys::InvalidOid || (store != pg_sys::InvalidOid && relid == store) {
        forget_all();
    }
}

/// Forgets every cached key; the next use reloads. Also called when the master key file setting
/// changes.
pub fn forget_all() {
    GENERATION.set(GENERATION.get() + 1);
}

/// Runs `f` on the cache, first dropping what an invalidation made stale.
fn with_cache<R>(f: impl FnOnce(&mut Cache) -> R) -> R {
    CACHE.with_borrow_mut(|cache| {
        let generation = GENERATION.get();
        if cache.generation != generation {
            cache.generation = generation;
            cache.master = None;
            cache.by_id.clear();
            cache.active.clear();
            cache.last_active = None;
            cache.last_by_id = None;
            cache.blind.clear();
            cache.store = None;
            cache.source = None;
        }
        f(cache)
    })
}

/// A fresh 96-bit nonce from this backend's ChaCha20 stream, seeded once from the OS.
pub fn fresh_nonce() -> [u8; envelope::NONCE_LEN] {
    // SAFETY: MyProcPid is set once at process start and only read afterwards.
    let pid = unsafe { pg_sys::MyProcPid };
    CACHE.with_borrow_mut(|cache| {
        if cache.rng.as_ref().is_none_or(|(seeded_by, _)| *seeded_by != pid) {
            cache.rng = Some((pid, crate::ids::seeded_rng()));
        }
        let mut nonce = [0u8; envelope::NONCE_LEN];
        cache.rng.as_mut().expect("seeded above").1.fill_bytes(&mut nonce);
        nonce
    })
}

fn master_key_error(code: PgSqlErrorCode, message: &str, detail: Option<&str>) -> SafeguardError {
    let error = SafeguardError::new(code, message).with_hint(format!(
        "Set {MASTER_KEY_SETTING} in postgresql.conf to a file that holds 64 hex digits or the base64 \
         of 32 random bytes, owned by the server's OS user with mode 0600 (or {MASTER_KEY_COMMAND_SETTING} \
         to a command that prints them), then reload the configuration."
    ));
    match detail {
        Some(detail) => error.with_detail(detail),
        None => error,
    }
}

/// Reads the configured master key: from the file, or from the command (the postmaster's key
/// when it ran the same command at start).
fn read_master_key() -> Result<Rc<ProtectedKey>, SafeguardError> {
    let (file, command) = (crate::gucs::master_key_file(), crate::gucs::master_key_command());
    match (file.is_empty(), command.is_empty()) {
        (false, false) => Err(master_key_error(
            PgSqlErrorCode::ERRCODE_CONFIG_FILE_ERROR,
            "both a master key file and a master key command are configured",
            Some(&format!("Set either {MASTER_KEY_SETTING} or {MASTER_KEY_COMMAND_SETTING}, not both: which one holds the key would be a guess.")),
        )),
        (_, true) => Ok(Rc::new(ProtectedKey::new(read_key_file(&file, &format!("The file named by {MASTER_KEY_SETTING}"))?))),
        (true, false) => {
            let from_start = FROM_SERVER_START
                .with_borrow(|held| held.as_ref().filter(|(ran, _)| *ran == command).map(|(_, key)| key.clone()));
            match from_start {
                Some(key) => Ok(key),
                None => Ok(Rc::new(ProtectedKey::new(run_key_command(&command, MASTER_KEY_COMMAND_SETTING)?))),
            }
        }
    }
}

/// Runs a master key command (`which` names it in messages: the setting, or the previous key's
/// command of a rotation). Errors say what went wrong, never what it printed.
pub fn run_key_command(template: &str, which: &str) -> Result<Key, SafeguardError> {
    // SAFETY: DataDir is set before any library is loaded and never changes.
    let data_directory = unsafe { std::ffi::CStr::from_ptr(pg_sys::DataDir) }.to_string_lossy();
    let command = key_command::expand(template, &data_directory).map_err(|_| {
        SafeguardError::new(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, format!("{which} has an unknown placeholder"))
            .with_hint("%d stands for the data directory and %% for a percent sign; no other % placeholder exists.")
    })?;
    key_command::run(&command, crate::gucs::master_key_command_timeout(), || {
        pgrx::check_for_interrupts!();
    })
    .map_err(|failure| {
        let (code, message) = match failure {
            key_command::Failure::NotAKey { .. } | key_command::Failure::TooMuchOutput => {
                (PgSqlErrorCode::ERRCODE_CONFIG_FILE_ERROR, format!("{which} did not print a valid master key"))
            }
            _ => (PgSqlErrorCode::ERRCODE_EXTERNAL_ROUTINE_EXCEPTION, format!("{which} failed")),
        };
        SafeguardError::new(code, message).with_detail(failure.describe()).with_hint(format!(
            "Run it by hand as the server's OS user: it must print 64 hex digits or the base64 of 32 bytes, \
             nothing else, and exit with 0 within safeguard.master_key_command_timeout ({} s).",
            crate::gucs::master_key_command_timeout().as_secs()
        ))
    })
}

/// At server start (pg_safeguard in shared_preload_libraries, called by the postmaster from
/// `_PG_init`): runs the master key command once, so that every backend inherits the key instead
/// of running the command itself. A failure is logged as a WARNING, without anything the command
/// printed, and the server starts; backends then run the command at their first use of a key,
/// where the failure becomes an error of that statement.
pub fn obtain_master_key_at_server_start() {
    let command = crate::gucs::master_key_command();
    if command.is_empty() || !crate::gucs::master_key_file().is_empty() {
        return;
    }
    match run_key_command(&command, MASTER_KEY_COMMAND_SETTING) {
        Ok(key) => {
            FROM_SERVER_START.with_borrow_mut(|held| *held = Some((command, Rc::new(ProtectedKey::new(key)))));
            pgrx::log!("pg_safeguard: the master key was obtained from {MASTER_KEY_COMMAND_SETTING} at server start");
        }
        Err(error) => error.as_warning(&format!(
            "each backend will run {MASTER_KEY_COMMAND_SETTING} at its first use of a key instead"
        )),
    }
}

/// Reads a master key file (`which` names it in messages). Errors say what is wrong with the
/// file, never what it holds.
pub fn read_key_file(path: &str, which: &str) -> Result<Key, SafeguardError> {
    if path.is_empty() {
        return Err(master_key_error(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "no master key is configured",
            Some(&format!("The setting {MASTER_KEY_SETTING} is empty.")),
        ));
    }
    let unreadable = |e: std::io::Error| {
        master_key_error(
            PgSqlErrorCode::ERRCODE_UNDEFINED_FILE,
            "could not read the master key file",
            Some(&format!("{which}: {e}.")),
        )
    };
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let mode = file.metadata().map_err(unreadable)?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(master_key_error(
            PgSqlErrorCode::ERRCODE_CONFIG_FILE_ERROR,
            "the master key file is accessible to other OS users",
            Some("Its permissions allow access to the group or to others; only its owner may read it."),
        ));
    }
    let mut contents = zeroize::Zeroizing::new(Vec::with_capacity(128));
    // A key file is tiny; reading at most 4 KiB keeps a wrong path (a log file, say) harmless.
    file.take(4096).read_to_end(&mut contents).map_err(unreadable)?;
    keys::parse_master_key(&contents).map_err(|error| {
        let detail = match error {
            BadKeyFile::NotAKey => "It must hold 64 hex digits or the base64 of 32 bytes, and nothing else.",
            BadKeyFile::Degenerate => "Its 32 bytes are all equal: a placeholder, not a random key.",
        };
        master_key_error(
            PgSqlErrorCode::ERRCODE_CONFIG_FILE_ERROR,
            "the master key file does not hold a valid key",
            Some(detail),
        )
    })
}

pub fn master_key() -> Rc<ProtectedKey> {
    try_master_key().unwrap_or_else(|e| e.report())
}

/// The master key, or why there is none, without raising: for callers that must not raise
/// (a setting's check hook).
pub fn try_master_key() -> Result<Rc<ProtectedKey>, SafeguardError> {
    if let Some(master) = with_cache(|cache| cache.master.clone()) {
        return Ok(master);
    }
    let master = read_master_key()?;
    with_cache(|cache| cache.master = Some(master.clone()));
    Ok(master)
}

/// The key table's oid and owner.
pub fn store() -> (pg_sys::Oid, pg_sys::Oid) {
    if let Some(store) = with_cache(|cache| cache.store) {
        return store;
    }
    let found = Spi::get_two::<pg_sys::Oid, pg_sys::Oid>(
        "SELECT c.oid, c.relowner FROM pg_catalog.pg_class c
          WHERE c.oid = pg_catalog.to_regclass('safeguard.key_store')",
    )
    .ok()
    .and_then(|(oid, owner)| Some((oid?, owner?)))
    .unwrap_or_else(|| pgrx::error!("pg_safeguard: safeguard.key_store not found"));
    KEY_STORE_RELID.set(found.0);
    with_cache(|cache| cache.store = Some(found));
    found
}

/// Runs `f` inside SPI as the key table's owner.
pub fn as_store_owner<R>(f: impl FnOnce(&mut pgrx::spi::SpiClient<'_>) -> R) -> R {
    let (_, owner) = store();
    let _as_owner = AsUser::switch_to(owner);
    Spi::connect_mut(f)
}

/// The relation the key reads go to: the key table, or on a Citus node where it is a reference
/// table (safeguard.citus_setup()), this node's copy of it. Decryption pushed down to a worker
/// runs inside a query on a shard, where Citus refuses the distributed query that reading the
/// reference table by its own name would be; its local copy is an ordinary table, kept equal to
/// the coordinator's by Citus in the coordinator's transaction.
fn key_source(client: &pgrx::spi::SpiClient<'_>) -> Rc<str> {
    if let Some(source) = with_cache(|cache| cache.source.clone()) {
        return source;
    }
    let source: Rc<str> = crate::citus::local_copy_of_reference_table(client, "safeguard", "key_store")
        .unwrap_or_else(|| "safeguard.key_store".to_owned())
        .into();
    with_cache(|cache| cache.source = Some(source.clone()));
    source
}

/// Runs `f`, which changes the key table, inside SPI as its owner, then tells every backend to
/// forget its cached keys. Refused on a Citus worker: there the key table is a replica of the
/// coordinator's (safeguard.citus_setup()), and a worker's own key id sequence would hand out ids
/// the coordinator also hands out.
pub fn change_keys<R>(f: impl FnOnce(&mut pgrx::spi::SpiClient<'_>) -> R) -> R {
    if crate::citus::is_worker() {
        SafeguardError::new(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            "keys are created, rotated and destroyed on the Citus coordinator",
        )
        .with_detail("This node is a Citus worker: its copy of safeguard.key_store follows the coordinator's.")
        .with_hint("Run the call on the coordinator; every node sees the change when it commits.")
        .report()
    }
    let result = as_store_owner(f);
    invalidate_everywhere();
    result
}

/// Tells every backend, at commit, to forget its cached keys.
pub fn invalidate_everywhere() {
    let (relid, _) = store();
    // SAFETY: queues a relcache invalidation message for an existing relation.
    unsafe { pg_sys::CacheInvalidateRelcacheByRelid(relid) };
}

pub fn uuid_arg(tenant: Option<Uuid>) -> DatumWithOid<'static> {
    // SAFETY: a Uuid is a uuid datum.
    unsafe { DatumWithOid::new(tenant, pg_sys::UUIDOID) }
}

fn unwrap_failure() -> SafeguardError {
    SafeguardError::new(
        PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
        "a data key does not unwrap under the configured master key",
    )
    .with_detail("The configured master key is not the one the data keys were created under, or the key table was altered.")
    .with_hint(format!("Point {MASTER_KEY_SETTING} (or {MASTER_KEY_COMMAND_SETTING}) at the master key the keys were created with."))
}

fn load_key(id: u32) -> Rc<DataKey> {
    let row = as_store_owner(|client| {
        let source = key_source(client);
        let table = client
            .select(
                &format!("SELECT tenant_id, status, wrapped_key FROM {source} WHERE id = $1"),
                Some(1),
                &[(id as i32).into()],
            )
            .unwrap_or_else(|e| pgrx::error!("pg_safeguard: reading the key table failed: {e}"));
        if table.is_empty() {
            return None;
        }
        let row = table.first();
        Some((
            row.get::<Uuid>(1).ok().flatten(),
            row.get::<String>(2).ok().flatten().unwrap_or_default(),
            row.get::<Vec<u8>>(3).ok().flatten(),
        ))
    });
    let Some((tenant, status, wrapped)) = row else {
        SafeguardError::new(PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT, "the key of this encrypted value does not exist")
            .with_detail(format!("The value names key {id}, which is not in safeguard.key_store."))
            .with_hint("Restore safeguard.key_store together with the data it encrypts.")
            .report()
    };
    let key = match (status.as_str(), wrapped) {
        ("destroyed", _) | (_, None) => DataKey::Destroyed,
        (_, Some(wrapped)) => {
            let data_key = keys::unwrap(&master_key(), id, &tenant_bytes(tenant), &wrapped)
                .unwrap_or_else(|_| unwrap_failure().report());
            DataKey::Usable { tenant, cipher: Rc::new(envelope::cipher(&data_key)) }
        }
    };
    let key = Rc::new(key);
    with_cache(|cache| cache.by_id.insert(id, key.clone()));
    key
}

/// The data key `id`, from the cache or the key table.
pub fn key_by_id(id: u32) -> Rc<DataKey> {
    let cached = with_cache(|cache| match &cache.last_by_id {
        Some((last, key)) if *last == id => Some(key.clone()),
        _ => {
            let key = cache.by_id.get(&id).cloned()?;
            cache.last_by_id = Some((id, key.clone()));
            Some(key)
        }
    });
    cached.unwrap_or_else(|| load_key(id))
}

/// The id and cipher of `tenant`'s active key (the global key for `None`).
pub fn active_key(tenant: Option<Uuid>) -> (u32, Rc<Aes256Gcm>) {
    let cached = with_cache(|cache| {
        if let Some((last_tenant, id, cipher)) = &cache.last_active {
            if *last_tenant == tenant {
                return Some((*id, cipher.clone()));
            }
        }
        let id = *cache.active.get(&tenant)?;
        match cache.by_id.get(&id)?.as_ref() {
            DataKey::Usable { cipher, .. } => {
                cache.last_active = Some((tenant, id, cipher.clone()));
                Some((id, cipher.clone()))
            }
            DataKey::Destroyed => None,
        }
    });
    if let Some(found) = cached {
        return found;
    }
    let id = as_store_owner(|client| {
        let source = key_source(client);
        client
            .select(
                &format!("SELECT id FROM {source} WHERE tenant_id IS NOT DISTINCT FROM $1 AND status = 'active'"),
                Some(1),
                &[uuid_arg(tenant)],
            )
            .ok()
            .and_then(|table| table.first().get_one::<i32>().ok().flatten())
    });
    let Some(id) = id else {
        let (message, call) = match tenant {
            Some(_) => ("the current tenant has no active encryption key", "safeguard.create_key(<tenant id>)"),
            None => ("there is no active global encryption key", "safeguard.create_key()"),
        };
        SafeguardError::new(PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE, message)
            .with_detail("Values are encrypted with the active key of safeguard.current_tenant(), or with the global key when no tenant is set.")
            .with_hint(format!("An administrator creates it with SELECT {call};"))
            .report()
    };
    let id = id as u32;
    match key_by_id(id).as_ref() {
        DataKey::Usable { cipher, .. } => {
            with_cache(|cache| cache.active.insert(tenant, id));
            (id, cipher.clone())
        }
        DataKey::Destroyed => pgrx::error!("pg_safeguard: active key {id} has no key material"),
    }
}

/// The blind-index key of `tenant` for `purpose`.
pub fn blind_index_key(tenant: Option<Uuid>, purpose: &[u8]) -> Rc<Key> {
    let lookup = (tenant, purpose.to_vec());
    if let Some(key) = with_cache(|cache| cache.blind.get(&lookup).cloned()) {
        return key;
    }
    let key = Rc::new(keys::blind_index_key(&master_key(), &tenant_bytes(tenant), purpose));
    with_cache(|cache| cache.blind.insert(lookup, key.clone()));
    key
}

/// 32 bytes from the operating system's CSPRNG, for a new data key.
pub fn random_key() -> Key {
    let mut key = zeroize::Zeroizing::new([0u8; 32]);
    getrandom::fill(&mut key[..]).unwrap_or_else(|_| {
        SafeguardError::new(PgSqlErrorCode::ERRCODE_SYSTEM_ERROR, "the operating system's random source failed")
            .report()
    });
    key
}
