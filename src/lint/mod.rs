//! `safeguard.lint()`: the database review, automated. The rules are catalog queries, one per
//! rule, combined in one set-based query (`sql/lint.sql`) so a schema of a thousand tables is
//! reviewed in one pass; this module registers them after the capabilities they inspect.

pgrx::extension_sql_file!(
    "../../sql/lint.sql",
    name = "lint",
    requires = [
        "tenancy",
        "audit",
        "audit_chain",
        "crypto",
        "constraint_helpers",
        gucs::_setting,
        gucs::_preloaded
    ]
);
