//! Tenant isolation: `isolate()`, `isolate_via()`, `isolate_all()`, `auto_isolate()`,
//! `unisolate()` and the view `isolated_tables`, in `sql/tenancy.sql`.
//!
//! The helpers are DDL orchestration, written in PL/pgSQL where every identifier goes through
//! `format('%I')`; they run once per migration, not per row. What runs per query is the policy
//! `tenant = (SELECT safeguard.current_tenant())`: a Rust function (`src/context/`) evaluated once
//! per query as an InitPlan, so the comparison is against a constant and uses the tenant index.

pgrx::extension_sql_file!(
    "../../sql/tenancy.sql",
    name = "tenancy",
    requires = ["bootstrap"]
);

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
