//! Tenant isolation: `isolate()`, `isolate_via()`, `isolate_all()`, `auto_isolate()`,
//! `unisolate()` and the view `isolated_tables`, in `sql/tenancy.sql`.
//!
//! The helpers are DDL orchestration, written in PL/pgSQL where every identifier goes through
//! `format('%I')`; they run once per migration, not per row. What runs per query is the policy
//! `tenant = (SELECT safeguard.current_tenant())`: a Rust function (`src/context/`) evaluated once
//! per query as an InitPlan, so the comparison is against a constant and uses the tenant index.

use crate::as_user::AsUser;
use crate::error::SafeguardError;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;

pgrx::extension_sql_file!(
    "../../sql/tenancy.sql",
    name = "tenancy",
    requires = ["bootstrap", gucs::_setting]
);

/// Runs one ALTER TABLE statement (scope_foreign_key's new key) with its foreign-key checks done
/// the way PostgreSQL's referential-integrity triggers do them. PostgreSQL validates a new key
/// with one query run as the current role; when that role owns both tables and they FORCE ROW
/// LEVEL SECURITY, as isolated tables do, the query sees only the current tenant's rows (none
/// without a context), and a key that other rows break is accepted (seen on PostgreSQL 15).
/// Without the forcing, as the triggers run, the owner's query sees every row. The statement
/// still needs the caller's own rights (ALTER TABLE: ownership); anything but exactly one ALTER
/// TABLE statement is refused (22023).
#[pg_extern(volatile, parallel_unsafe, strict)]
fn _alter_table_with_unforced_checks(statement: &str) {
    if !is_one_alter_table(statement) {
        SafeguardError::new(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, "not one ALTER TABLE statement")
            .with_hint("safeguard._alter_table_with_unforced_checks() runs the ALTER TABLE that scope_foreign_key() composes.")
            .report();
    }
    let _owner_checks = AsUser::without_forced_row_security();
    // PostgreSQL's errors (23503 for a row that breaks the key, 42501 for a non-owner) propagate
    // unchanged.
    Spi::run(statement).unwrap_or_else(|e| pgrx::error!("pg_safeguard: {e}"));
}

/// Whether `statement` parses as exactly one ALTER TABLE statement.
fn is_one_alter_table(statement: &str) -> bool {
    // SAFETY: a raw parse tree from PostgreSQL's parser; only its tag is read.
    crate::raw_sql::single_statement(statement)
        .is_some_and(|stmt| unsafe { (*stmt).type_ } == pg_sys::NodeTag::T_AlterTableStmt)
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn isolate_forces_row_security_with_one_policy() {
        Spi::run("CREATE TABLE tenant_rows (id int PRIMARY KEY, tenant_id uuid NOT NULL)").unwrap();
        Spi::run("SELECT safeguard.isolate('tenant_rows')").unwrap();
        Spi::run("SELECT safeguard.isolate('tenant_rows')").unwrap();
        let state = Spi::get_one::<String>(
            "SELECT format('%s %s %s %s', c.relrowsecurity, c.relforcerowsecurity,
                          (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid),
                          (SELECT policy_unchanged FROM safeguard.isolated_tables
                            WHERE table_name = 'tenant_rows'::regclass))
               FROM pg_class c WHERE c.oid = 'tenant_rows'::regclass",
        )
        .unwrap()
        .unwrap();
        assert_eq!(state, "t t 1 t");
        Spi::run("SELECT safeguard.unisolate('tenant_rows')").unwrap();
        assert_eq!(
            Spi::get_one::<bool>(
                "SELECT relrowsecurity FROM pg_class WHERE oid = 'tenant_rows'::regclass"
            )
            .unwrap(),
            Some(false)
        );
    }

    #[pg_test(error = "column tenant_id of table public.tenant_text has type text, not uuid")]
    fn tenant_column_must_be_uuid() {
        Spi::run("CREATE TABLE tenant_text (id int, tenant_id text)").unwrap();
        Spi::run("SELECT safeguard.isolate('tenant_text')").unwrap();
    }
}
