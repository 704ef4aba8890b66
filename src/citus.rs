//! pg_safeguard in a Citus cluster: what the library needs to know about the node it runs on,
//! and the one-call set-up of a cluster (sql/citus.sql: `safeguard.citus_setup()`,
//! `grant_decrypt()`, `revoke_decrypt()`). docs/citus.md.

use pgrx::prelude::*;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;

pgrx::extension_sql_file!(
    "../sql/citus.sql",
    name = "citus",
    requires = ["crypto", "audit", "audit_chain", "lint"]
);

/// Whether the `citus` extension exists in this database.
pub fn installed() -> bool {
    // SAFETY: looks an extension up by name in this database's catalog.
    unsafe { pg_sys::get_extension_oid(c"citus".as_ptr(), true) != pg_sys::InvalidOid }
}

/// Whether this server is a Citus worker: a node that a coordinator added to its cluster (its
/// group is not the coordinator's group 0). A server where the `citus` extension does not exist
/// in this database, or that no coordinator added yet, is not.
pub fn is_worker() -> bool {
    if !installed() {
        return false;
    }
    Spi::get_one::<bool>("SELECT groupid <> 0 FROM pg_catalog.pg_dist_local_group")
        .unwrap_or_else(|e| pgrx::error!("pg_safeguard: reading Citus's node group failed: {e}"))
        .unwrap_or(false)
}

/// The qualified name of this node's copy of `schema.table` when that is a Citus reference table
/// with a copy (a shard placement) on this node; None otherwise, also where Citus is absent.
/// Reading the copy is an ordinary local query, allowed where Citus refuses a distributed one
/// (inside a query running on a shard).
pub fn local_copy_of_reference_table(client: &pgrx::spi::SpiClient<'_>, schema: &str, table: &str) -> Option<String> {
    if !installed() {
        return None;
    }
    // A reference table has one shard; its placement on a node is the table `<name>_<shard id>`.
    client
        .select(
            "SELECT copy FROM (
                 SELECT pg_catalog.format('%I.%I', $1, $2 || '_' || s.shardid) AS copy
                   FROM pg_catalog.pg_dist_shard s
                   JOIN pg_catalog.pg_dist_partition p ON p.logicalrelid = s.logicalrelid
                  WHERE s.logicalrelid = pg_catalog.to_regclass(pg_catalog.format('%I.%I', $1, $2))
                    AND p.partmethod = 'n' AND p.repmodel = 't') c
              WHERE pg_catalog.to_regclass(c.copy) IS NOT NULL",
            Some(1),
            &[schema.into(), table.into()],
        )
        .unwrap_or_else(|e| pgrx::error!("pg_safeguard: reading Citus's shards failed: {e}"))
        .first()
        .get_one::<String>()
        .ok()
        .flatten()
}

/// The shard of a Citus distributed table that a trigger fires on, when it is a copy that Citus
/// made of one of `triggers`; None for the trigger on a table itself, and where Citus is absent.
pub fn shard_of_trigger_copy(trigger_name: &str, triggers: &[&str]) -> Option<i64> {
    shard_id_in_trigger_name(trigger_name, triggers).filter(|_| installed())
}

/// The shard id that Citus appended to the name of one of `triggers` when it copied the trigger
/// onto a shard (`sg_audit_insert_102008` for `sg_audit_insert`); None for the trigger on the
/// table itself. (A shard's own name may be shortened by Citus; the trigger names given here
/// are short enough never to be.)
pub fn shard_id_in_trigger_name(trigger_name: &str, triggers: &[&str]) -> Option<i64> {
    triggers.iter().find_map(|base| {
        let digits = trigger_name.strip_prefix(base)?.strip_prefix('_')?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    })
}

/// The shard id at the end of a shard's name: Citus names a shard `<table>_<shard id>` (the table
/// part shortened for long names), so `consults_2026_102600` is shard 102600. None when the name
/// does not end so.
pub fn shard_id_in_shard_name(shard_name: &str) -> Option<i64> {
    let (_, digits) = shard_name.rsplit_once('_')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The Citus table a shard belongs to.
#[derive(Clone)]
pub struct ShardOf {
    pub schema: String,
    pub table: String,
    /// A reference table: every node holds a copy (a placement) of its one shard.
    pub reference: bool,
}

thread_local! {
    /// Shard id -> its table, as this node's Citus metadata says.
    static LOGICAL_TABLES: RefCell<HashMap<i64, ShardOf>> = RefCell::new(HashMap::new());
    /// Whether this node is a worker, once asked (`is_worker_cached`).
    static WORKER: Cell<Option<bool>> = const { Cell::new(None) };
    /// Set by the relcache callback (a table renamed, a shard moved, a node added): the map and
    /// the worker flag are dropped at the next lookup. A Cell, so that the callback, which may run
    /// inside our own SPI calls, never borrows the map.
    static LOGICAL_TABLES_STALE: Cell<bool> = const { Cell::new(false) };
}

fn drop_stale() {
    if LOGICAL_TABLES_STALE.replace(false) {
        LOGICAL_TABLES.with_borrow_mut(HashMap::clear);
        WORKER.set(None);
    }
}

/// `is_worker()`, asked once per backend (again after a relcache invalidation): for the audit
/// triggers, which ask for every change of a reference table.
pub fn is_worker_cached() -> bool {
    drop_stale();
    if let Some(worker) = WORKER.get() {
        return worker;
    }
    let worker = is_worker();
    WORKER.set(Some(worker));
    worker
}

/// Registers the callback that keeps `logical_table_of_shard`'s cache fresh; once per process.
pub fn init() {
    // SAFETY: the callback only touches a thread-local cell.
    unsafe { pg_sys::CacheRegisterRelcacheCallback(Some(on_relcache_invalidation), pg_sys::Datum::from(0)) };
}

#[pg_guard]
unsafe extern "C-unwind" fn on_relcache_invalidation(_arg: pg_sys::Datum, _relid: pg_sys::Oid) {
    LOGICAL_TABLES_STALE.set(true);
}

/// The Citus table of which `shard_id` is a shard, from this node's Citus metadata; None if this
/// node does not know the shard.
pub fn logical_table_of_shard(shard_id: i64) -> Option<ShardOf> {
    drop_stale();
    if let Some(found) = LOGICAL_TABLES.with_borrow(|tables| tables.get(&shard_id).cloned()) {
        return Some(found);
    }
    let found = Spi::get_three_with_args::<String, String, bool>(
        "SELECT n.nspname::text, c.relname::text, p.partmethod = 'n'
           FROM pg_catalog.pg_dist_shard s
           JOIN pg_catalog.pg_dist_partition p ON p.logicalrelid = s.logicalrelid
           JOIN pg_catalog.pg_class c ON c.oid = s.logicalrelid
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          WHERE s.shardid = $1",
        &[shard_id.into()],
    )
    .ok()
    .and_then(|(schema, table, reference)| {
        Some(ShardOf { schema: schema?, table: table?, reference: reference.unwrap_or(false) })
    })?;
    LOGICAL_TABLES.with_borrow_mut(|tables| tables.insert(shard_id, found.clone()));
    Some(found)
}

#[cfg(test)]
mod tests {
    use super::{shard_id_in_shard_name, shard_id_in_trigger_name};

    const TRIGGERS: &[&str] = &["sg_audit_insert", "sg_audit_update", "sg_audit_row"];

    #[test]
    fn the_trigger_on_the_table_itself_names_no_shard() {
        assert_eq!(shard_id_in_trigger_name("sg_audit_insert", TRIGGERS), None);
        assert_eq!(shard_id_in_trigger_name("sg_audit_row", TRIGGERS), None);
    }

    #[test]
    fn a_copy_on_a_shard_names_its_shard() {
        assert_eq!(shard_id_in_trigger_name("sg_audit_insert_102008", TRIGGERS), Some(102008));
        assert_eq!(shard_id_in_trigger_name("sg_audit_row_7", TRIGGERS), Some(7));
    }

    #[test]
    fn other_suffixes_and_other_triggers_name_no_shard() {
        assert_eq!(shard_id_in_trigger_name("sg_audit_insert_", TRIGGERS), None);
        assert_eq!(shard_id_in_trigger_name("sg_audit_insert_12a", TRIGGERS), None);
        assert_eq!(shard_id_in_trigger_name("sg_audit_insert102008", TRIGGERS), None);
        assert_eq!(shard_id_in_trigger_name("sg_audit_delete_102008", TRIGGERS), None);
        assert_eq!(shard_id_in_trigger_name("my_trigger_102008", TRIGGERS), None);
        assert_eq!(shard_id_in_trigger_name("sg_audit_insert_99999999999999999999999", TRIGGERS), None);
    }

    #[test]
    fn a_shard_name_ends_with_its_shard_id() {
        assert_eq!(shard_id_in_shard_name("consults_2026_102600"), Some(102600));
        assert_eq!(shard_id_in_shard_name("p_1"), Some(1));
        assert_eq!(shard_id_in_shard_name("consults"), None);
        assert_eq!(shard_id_in_shard_name("consults_"), None);
        assert_eq!(shard_id_in_shard_name("consults_2026x"), None);
        assert_eq!(shard_id_in_shard_name("t_99999999999999999999999"), None);
    }
}
