//! pg_safeguard in a Citus cluster: what the library needs to know about the node it runs on,
//! and the one-call set-up of a cluster (sql/citus.sql: `safeguard.citus_setup()`,
//! `grant_decrypt()`, `revoke_decrypt()`). docs/citus.md.

use pgrx::prelude::*;

pgrx::extension_sql_file!(
    "../sql/citus.sql",
    name = "citus",
    requires = ["crypto", "lint"]
);

/// Whether this server is a Citus worker: a node that a coordinator added to its cluster (its
/// group is not the coordinator's group 0). A server where the `citus` extension does not exist
/// in this database, or that no coordinator added yet, is not.
pub fn is_worker() -> bool {
    // SAFETY: looks an extension up by name in this database's catalog.
    if unsafe { pg_sys::get_extension_oid(c"citus".as_ptr(), true) } == pg_sys::InvalidOid {
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
    // SAFETY: looks an extension up by name in this database's catalog.
    if unsafe { pg_sys::get_extension_oid(c"citus".as_ptr(), true) } == pg_sys::InvalidOid {
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
