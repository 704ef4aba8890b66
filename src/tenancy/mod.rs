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
