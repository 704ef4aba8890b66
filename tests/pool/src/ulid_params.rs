//! `safeguard.ulid` through a real driver with bound parameters, as an application role with
//! the default search_path ("$user", public): comparisons are written `id = $1`, never
//! `OPERATOR(safeguard.=)`, and the server infers the parameter's type from the operator. Until
//! 0.2.0 the operators lived in schema safeguard and every such query failed with 42883.
//! - untyped parameters sent as text (what psycopg, asyncpg and JDBC send for strings);
//! - the same parameters in binary: the 16 bytes, which the type shares with uuid (the
//!   statement is prepared first, so the server's inferred type is checked to be ulid);
//! - each of the six comparison operators, a join, IN, and the casts an application writes.
//!
//! The fixture (table `tickets`) is created by scripts/client-test.sh.

use crate::params::{Binary, Untyped};
use tokio_postgres::types::ToSql;
use uuid::Uuid;

pub async fn comparisons(client: &tokio_postgres::Client) -> Result<String, String> {
    let fail = |what: &str, e: tokio_postgres::Error| match e.as_db_error() {
        Some(db) => format!("ulid parameters: {what}: {} ({})", db.message(), db.code().code()),
        None => format!("ulid parameters: {what}: {e}"),
    };
    let path: String = client
        .query_one("SHOW search_path", &[])
        .await
        .map_err(|e| fail("SHOW search_path", e))?
        .get(0);
    if path != "\"$user\", public" {
        return Err(format!("ulid parameters: expected the default search_path, got {path}"));
    }
    // The 10th of the 20 ids, as text and as its bytes (through the uuid cast).
    let row = client
        .query_one("SELECT id::text AS as_text, id::uuid AS as_uuid FROM tickets ORDER BY id OFFSET 9 LIMIT 1", &[])
        .await
        .map_err(|e| fail("reading an id", e))?;
    let (text, bytes): (String, Uuid) = (row.get(0), row.get(1));

    let mut checked = Vec::new();
    for (op, want) in [("=", 1i64), ("<>", 19), ("<", 9), ("<=", 10), (">", 10), (">=", 11)] {
        let sql = format!("SELECT count(*) FROM tickets WHERE id {op} $1");
        let statement = client.prepare(&sql).await.map_err(|e| fail(&sql, e))?;
        if statement.params()[0].name() != "ulid" {
            return Err(format!("ulid parameters: {sql}: parameter inferred as {}", statement.params()[0]));
        }
        let as_text: i64 = client.query_one(&statement, &[&Untyped(&text)]).await.map_err(|e| fail(&sql, e))?.get(0);
        let as_binary: i64 =
            client.query_one(&statement, &[&Binary(bytes.as_bytes())]).await.map_err(|e| fail(&sql, e))?.get(0);
        if as_text != want || as_binary != want {
            return Err(format!("ulid parameters: {sql}: {as_text} (text), {as_binary} (binary), want {want}"));
        }
        checked.push(op);
    }
    let probes: [(&str, &str, &(dyn ToSql + Sync), i64); 5] = [
        ("a self-join", "SELECT count(*) FROM tickets a JOIN tickets b USING (id) WHERE a.id >= $1", &Untyped(&text), 11),
        ("IN", "SELECT count(*) FROM tickets WHERE id IN ($1, $1)", &Untyped(&text), 1),
        ("a uuid parameter", "SELECT count(*) FROM tickets WHERE id::uuid = $1", &bytes, 1),
        ("a uuid parameter cast to ulid", "SELECT count(*) FROM tickets WHERE id = $1::uuid::safeguard.ulid", &bytes, 1),
        ("a text parameter cast to ulid", "SELECT count(*) FROM tickets WHERE id = $1::text::safeguard.ulid", &text, 1),
    ];
    for (what, sql, param, want) in probes {
        let got: i64 = client.query_one(sql, &[param]).await.map_err(|e| fail(what, e))?.get(0);
        if got != want {
            return Err(format!("ulid parameters: {what}: {got}, want {want}"));
        }
    }
    Ok(format!(
        "ulid parameters: {} operators in text and binary, a join, IN and casts under the default search_path, as {}",
        checked.join(" "),
        client.query_one("SELECT current_user::text", &[]).await.map_err(|e| fail("current_user", e))?.get::<_, String>(0)
    ))
}
