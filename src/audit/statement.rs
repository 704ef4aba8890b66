//! The SQL of the statement-level audit triggers (INSERT and DELETE, so that COPY and
//! INSERT ... SELECT write their log rows in one set-based statement): pure Rust. Used only when
//! the log cannot be written directly (`super::direct`: a DBA added an insert trigger or a
//! constraint to it).
//!
//! The statement reads the trigger's transition table and is prepared once per backend, table
//! and shape. Identifiers are always double-quoted; the primary-key names used as JSON keys
//! travel as a parameter, never as literals in the text.
//!
//! Parameters: $1 tenant (used when the table has no tenant column), $2 actor, $3 impersonator,
//! $4 request id, $5 database user, $6 schema, $7 table, $8 excluded columns (text[]),
//! $9 primary-key column names (text[]), $10 the cluster's offset to txid_current() (`era`),
//! $11 and $12 the id and subject of the token that set the context.
//! The session facts (client address, application name,
//! transaction id) are computed once per statement by a sub-select, not once per row.

/// A PostgreSQL identifier, always quoted.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RowsOf {
    /// AFTER INSERT ... REFERENCING NEW TABLE AS sg_new
    Inserted,
    /// AFTER DELETE ... REFERENCING OLD TABLE AS sg_old
    Deleted,
}

pub const NEW_TABLE: &str = "sg_new";
pub const OLD_TABLE: &str = "sg_old";

pub fn insert_log_rows(
    rows: RowsOf,
    tenant_column: Option<&str>,
    primary_key: &[String],
    tokens: bool,
) -> String {
    let (operation, data_column, transition) = match rows {
        RowsOf::Inserted => ("INSERT", "new_data", NEW_TABLE),
        RowsOf::Deleted => ("DELETE", "old_data", OLD_TABLE),
    };
    let tenant = match tenant_column {
        Some(column) => format!("t.{}", quote_ident(column)),
        None => "$1".to_owned(),
    };
    let record_id = if primary_key.is_empty() {
        // No primary key: the record is its whole row.
        "pg_catalog.to_jsonb(t)".to_owned()
    } else {
        let pairs: Vec<String> = primary_key
            .iter()
            .enumerate()
            .map(|(i, column)| format!("$9[{}], t.{}", i + 1, quote_ident(column)))
            .collect();
        format!("pg_catalog.jsonb_build_object({})", pairs.join(", "))
    };
    // The token columns where the log has them (not a 0.1.0 log: see audit::log_has_token_columns).
    let (token_columns, token_values) = if tokens { (", token_id, token_subject", ", $11, $12") } else { ("", "") };
    format!(
        "INSERT INTO safeguard.audit_log \
           (tenant_id, actor_id, impersonator_id, request_id, db_user, client_addr, application_name, \
            txid, table_schema, table_name, operation, record_id, {data_column}{token_columns}) \
         SELECT {tenant}, $2, $3, $4, $5, s.client_addr, s.application_name, s.txid, $6, $7, \
                '{operation}', {record_id}, pg_catalog.to_jsonb(t) OPERATOR(pg_catalog.-) $8{token_values} \
           FROM (SELECT pg_catalog.inet_client_addr() AS client_addr, \
                        pg_catalog.current_setting('application_name') AS application_name, \
                        pg_catalog.txid_current() + $10 AS txid) AS s, \
                {transition} AS t"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_always_quoted() {
        assert_eq!(quote_ident("id"), "\"id\"");
        assert_eq!(
            quote_ident("Tenant \"Id\"; DROP TABLE x"),
            "\"Tenant \"\"Id\"\"; DROP TABLE x\""
        );
    }

    #[test]
    fn inserted_rows_with_tenant_column_and_key() {
        let sql = insert_log_rows(
            RowsOf::Inserted,
            Some("org id"),
            &["a".into(), "b\"".into()],
            true,
        );
        assert!(sql.contains("SELECT t.\"org id\", $2"), "{sql}");
        assert!(!sql.contains("old_data") && sql.contains("new_data, token_id, token_subject)"), "{sql}");
        assert!(sql.contains("OPERATOR(pg_catalog.-) $8, $11, $12 "), "{sql}");
        assert!(
            sql.contains("pg_catalog.jsonb_build_object($9[1], t.\"a\", $9[2], t.\"b\"\"\")"),
            "{sql}"
        );
        assert!(
            sql.contains("'INSERT'")
                && sql.contains("new_data")
                && sql.ends_with(" sg_new AS t")
                && sql.contains("pg_catalog.txid_current() + $10 AS txid) AS s")
        );
    }

    #[test]
    fn deleted_rows_without_key_or_tenant_column() {
        let sql = insert_log_rows(RowsOf::Deleted, None, &[], false);
        assert!(sql.contains("SELECT $1, $2"), "{sql}");
        assert!(!sql.contains("token_id") && !sql.contains("$11"), "a 0.1.0 log has no token columns: {sql}");
        assert!(
            sql.contains("'DELETE', pg_catalog.to_jsonb(t), pg_catalog.to_jsonb(t)"),
            "{sql}"
        );
        assert!(sql.contains("old_data") && sql.ends_with("sg_old AS t"));
    }
}
