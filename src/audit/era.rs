//! The audit log's transaction numbers stay ordered across a restore into another cluster.
//!
//! Seals are ranges of transaction numbers (`txid`): a seal covers every entry of a transaction
//! numbered below its horizon, which only works while numbers only grow. They grow for the life
//! of a cluster, its physical copies and pg_upgrade (which carries the counter over), but a dump
//! restored into another cluster lands among transaction numbers that may be far lower than the
//! restored seals' horizons: new entries would then fall inside ranges already sealed, and the
//! entries unsealed at dump time would never reach a horizon again.
//!
//! So the log records `txid_current()` plus an offset that belongs to the cluster
//! (`safeguard.audit_eras`, one row per cluster that wrote to this log, keyed by its system
//! identifier). The first cluster's offset is 0: there, `txid` is exactly `txid_current()`. A
//! cluster that finds entries or seals numbered at or above its own oldest running transaction
//! starts above all of them. Each backend reads its cluster's offset once.

use crate::as_user::AsUser;
use pgrx::prelude::*;
use std::cell::Cell;

/// The offset a cluster starts with: 0 when every number already in the log lies below every
/// transaction of this cluster that may still write (a fresh log, pg_upgrade, a restore into a
/// busier cluster); otherwise one above the highest number seen, so that this cluster's entries
/// follow every restored one.
pub fn starting_offset(highest_in_log: Option<i64>, oldest_running: i64) -> i64 {
    match highest_in_log {
        Some(highest) if highest >= oldest_running => highest + 1,
        _ => 0,
    }
}

#[derive(Clone, Copy)]
struct Cached {
    offset: i64,
    /// Set when this backend created the era in a transaction not yet known to have committed:
    /// the value is trusted only within that transaction, then read again.
    created_in: Option<u64>,
}

thread_local! {
    static CACHED: Cell<Option<Cached>> = const { Cell::new(None) };
}

fn top_transaction() -> u64 {
    // SAFETY: reads the current top-level transaction's ID (0 when none is assigned yet).
    unsafe { pg_sys::GetTopFullTransactionIdIfAny() }.value
}

fn system_identifier() -> i64 {
    // SAFETY: reads the cluster's identifier from the control file's copy in shared memory.
    unsafe { pg_sys::GetSystemIdentifier() as i64 }
}

/// This cluster's offset, recorded on first use (as the extension's owner, whoever calls).
pub fn txid_offset() -> i64 {
    offset(true)
}

/// The offset as txid_offset() would record it, without writing (for read-only callers such as
/// audit_verify(): when this cluster has no offset yet, it has written no entry either).
pub fn txid_offset_read_only() -> i64 {
    offset(false)
}

fn offset(record: bool) -> i64 {
    if let Some(cached) = CACHED.get() {
        if cached.created_in.is_none_or(|xid| xid == top_transaction()) {
            return cached.offset;
        }
    }
    let system = system_identifier();
    let (offset, created) = Spi::connect_mut(|client| {
        // Before the update to 0.2.0 (this library serving 0.1.0's tables) there is no table:
        // the log is this cluster's own, numbered by txid_current() itself.
        let owner = client
            .select(
                "SELECT c.relowner FROM pg_catalog.pg_class c
                  WHERE c.oid = pg_catalog.to_regclass('safeguard.audit_eras')",
                None,
                &[],
            )
            .and_then(|t| if t.is_empty() { Ok(None) } else { t.first().get_one::<pg_sys::Oid>() })
            .unwrap_or_else(|e| pgrx::error!("pg_safeguard: looking up safeguard.audit_eras failed: {e}"));
        let Some(owner) = owner else {
            return (0, false);
        };
        // As the extension's owner: the log's row security must not hide entries from the count,
        // and only the owner may record a cluster.
        let _as_owner = AsUser::switch_to(owner);
        let existing = |client: &pgrx::spi::SpiClient<'_>| {
            client
                .select(
                    "SELECT e.txid_offset FROM safeguard.audit_eras e WHERE e.system_identifier = $1",
                    None,
                    &[system.into()],
                )
                .and_then(|t| if t.is_empty() { Ok(None) } else { t.first().get_one::<i64>() })
                .unwrap_or_else(|e| pgrx::error!("pg_safeguard: reading safeguard.audit_eras failed: {e}"))
        };
        if let Some(offset) = existing(client) {
            return (offset, false);
        }
        // One cluster-start at a time; read again once the lock is ours.
        if record {
            client
                .update("SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('safeguard.audit_eras'))", None, &[])
                .unwrap_or_else(|e| pgrx::error!("pg_safeguard: locking safeguard.audit_eras failed: {e}"));
            if let Some(offset) = existing(client) {
                return (offset, false);
            }
        }
        // The highest number in the log: the seals' horizons, and the entries above the last
        // one (found through the log's block-range index on txid, so only the unsealed tail is
        // read).
        let (highest, oldest_running) = client
            .select(
                "WITH sealed AS (SELECT max(s.horizon) AS horizon FROM safeguard.audit_seals s)
                 SELECT greatest((SELECT horizon FROM sealed),
                                 (SELECT max(l.txid) FROM safeguard.audit_log l
                                   WHERE l.txid >= coalesce((SELECT horizon FROM sealed), -9223372036854775808))),
                        pg_catalog.txid_snapshot_xmin(pg_catalog.txid_current_snapshot())",
                None,
                &[],
            )
            .and_then(|t| t.first().get_two::<i64, i64>())
            .unwrap_or_else(|e| pgrx::error!("pg_safeguard: reading the log's transaction numbers failed: {e}"));
        let offset = starting_offset(highest, oldest_running.unwrap_or(0));
        if !record {
            return (offset, false);
        }
        let inserted = client
            .update(
                "INSERT INTO safeguard.audit_eras (system_identifier, txid_offset) VALUES ($1, $2)
                 ON CONFLICT (system_identifier) DO NOTHING",
                None,
                &[system.into(), offset.into()],
            )
            .unwrap_or_else(|e| pgrx::error!("pg_safeguard: recording this cluster in safeguard.audit_eras failed: {e}"))
            .len();
        if inserted == 0 {
            // Another session recorded it after our snapshot was taken (REPEATABLE READ):
            // invisible here, so this transaction cannot know the offset.
            crate::error::SafeguardError::new(
                PgSqlErrorCode::ERRCODE_T_R_SERIALIZATION_FAILURE,
                "this cluster's audit offset was recorded by a concurrent transaction",
            )
            .with_hint("Retry the transaction.")
            .report();
        }
        (offset, true)
    });
    if record {
        CACHED.set(Some(Cached { offset, created_in: created.then(top_transaction) }));
    }
    offset
}

#[cfg(test)]
mod tests {
    use super::starting_offset;

    #[test]
    fn a_cluster_starts_above_every_number_it_could_collide_with() {
        assert_eq!(starting_offset(None, 750), 0, "an empty log");
        assert_eq!(starting_offset(Some(700), 750), 0, "numbers below every running transaction");
        assert_eq!(starting_offset(Some(34_000_000), 13_800), 34_000_001, "a restore into a younger cluster");
        assert_eq!(starting_offset(Some(750), 750), 751, "the boundary itself collides");
    }
}
