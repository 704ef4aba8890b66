//! pg_safeguard: the safeguards a multi-tenant healthcare database needs, enforced in PostgreSQL.
//! This file stays thin: one module per capability, the shared error type and the settings.

pub mod as_user;
pub mod audit;
pub mod citus;
pub mod crypto;
pub mod constraints;
pub mod context;
mod cpu;
pub mod error;
pub mod gucs;
pub mod ids;
pub mod lint;
mod raw_sql;
mod scoped_flag;
mod tupdesc;
mod v1;
pub mod tenancy;
pub mod token;

::pgrx::pg_module_magic!(name, version);

pgrx::extension_sql_file!("../sql/bootstrap.sql", name = "bootstrap", bootstrap);

#[allow(non_snake_case)]
#[pgrx::pg_guard]
pub extern "C-unwind" fn _PG_init() {
    cpu::require_build_features();
    gucs::init();
    crypto::keystore::init();
    // SAFETY: a plain global that PostgreSQL sets while the postmaster loads preload libraries.
    if unsafe { pgrx::pg_sys::process_shared_preload_libraries_in_progress } {
        crypto::keystore::obtain_master_key_at_server_start();
    }
    citus::init();
    constraints::init();
    token::init();
}

/// Helpers shared by the in-database tests of the modules.
#[cfg(any(test, feature = "pg_test"))]
pub(crate) mod test_support {
    use pgrx::prelude::*;

    /// The single, non-NULL value a query returns; a failed query or a NULL fails the test.
    pub fn one<T: IntoDatum + FromDatum>(sql: &str) -> T {
        Spi::get_one::<T>(sql)
            .expect("query failed")
            .expect("query returned NULL")
    }
}

/// Required by `cargo pgrx test`: set-up of the throwaway test cluster.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    /// The master key file of encrypted columns: scripts/pgrx-test.sh creates one and names it
    /// in SAFEGUARD_TEST_MASTER_KEY_FILE.
    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        match std::env::var("SAFEGUARD_TEST_MASTER_KEY_FILE") {
            Ok(path) => vec![Box::leak(format!("safeguard.master_key_file = '{path}'").into_boxed_str())],
            Err(_) => vec![],
        }
    }
}
