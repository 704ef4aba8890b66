//! Encrypted columns through a real driver's bound parameters (tokio-postgres, extended query
//! protocol), the way applications in any language write them:
//! - parameters typed text, bytea and jsonb (the assignment casts encrypt them);
//! - an untyped parameter sent as text (the type's input encrypts it), as drivers such as
//!   psycopg, asyncpg or JDBC with `stringtype=unspecified` send strings;
//! - binary results carry the envelope bytes (send), and binary parameters carry them back
//!   unchanged (receive); malformed binary input is refused with 22P03.
//!
//! The fixture (table `charts`, keys, the decrypt grant) is created by scripts/client-test.sh.

use crate::params::{Binary, BoxError, Untyped};
use bytes::BytesMut;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type};
use uuid::Uuid;

/// jsonb in its binary wire form: version 1, then the JSON text.
#[derive(Debug)]
struct Jsonb<'a>(&'a str);

impl ToSql for Jsonb<'_> {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        out.extend_from_slice(&[1]);
        out.extend_from_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }
    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSONB
    }
    tokio_postgres::types::to_sql_checked!();
}

/// Any value in binary format, as raw bytes (an encrypted column's envelope).
struct Raw(Vec<u8>);

impl<'a> FromSql<'a> for Raw {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        Ok(Raw(raw.to_vec()))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

fn fail(what: &str) -> String {
    format!("encryption round trip: {what}")
}

pub async fn round_trips(client: &mut tokio_postgres::Client, tenant: Uuid) -> Result<String, String> {
    let err = |e: tokio_postgres::Error| fail(&e.to_string());
    let tx = client.transaction().await.map_err(err)?;
    tx.execute("SELECT safeguard.set_context($1)", &[&tenant]).await.map_err(err)?;

    // Typed parameters: text, bytea, jsonb.
    let typed = tx
        .prepare_typed(
            "INSERT INTO charts (id, tenant_id, history, scan, extra)
             VALUES ($1, safeguard.current_tenant(), $2, $3, $4)",
            &[Type::INT4, Type::TEXT, Type::BYTEA, Type::JSONB],
        )
        .await
        .map_err(err)?;
    let scan: Vec<u8> = (0u8..=255).collect();
    tx.execute(&typed, &[&1i32, &"Allergic to penicillin, née Ünal", &scan, &Jsonb(r#"{"phone": "555-0101"}"#)])
        .await
        .map_err(err)?;

    // Untyped parameters: the server infers the column types and runs their input functions.
    let untyped = tx
        .prepare("INSERT INTO charts (id, tenant_id, history, scan, extra) VALUES ($1, safeguard.current_tenant(), $2, $3, $4)")
        .await
        .map_err(err)?;
    let inferred: Vec<String> = untyped.params().iter().map(|t| t.name().to_owned()).collect();
    if inferred[1..] != ["encrypted_text", "encrypted_bytea", "encrypted_jsonb"] {
        return Err(fail(&format!("unexpected inferred parameter types {inferred:?}")));
    }
    tx.execute(&untyped, &[&2i32, &Untyped("Type 2 diabetes"), &Untyped("\\x00ff"), &Untyped(r#"[1, 2]"#)])
        .await
        .map_err(err)?;

    // Stored as envelopes, decrypted back to the values sent.
    let rows = tx
        .query(
            "SELECT id, history::text LIKE 'sgenc:%', safeguard.decrypt(history), safeguard.decrypt(scan),
                    safeguard.decrypt(extra)::text
               FROM charts WHERE id IN (1, 2) ORDER BY id",
            &[],
        )
        .await
        .map_err(err)?;
    let got: Vec<(i32, bool, String, Vec<u8>, String)> =
        rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4))).collect();
    let want = vec![
        (1, true, "Allergic to penicillin, née Ünal".to_owned(), scan.clone(), r#"{"phone": "555-0101"}"#.to_owned()),
        (2, true, "Type 2 diabetes".to_owned(), vec![0x00, 0xff], "[1, 2]".to_owned()),
    ];
    if got != want {
        return Err(fail(&format!("decrypted values differ: {got:?}")));
    }

    // Binary results carry the envelope; binary parameters carry it back unchanged.
    let row = tx.query_one("SELECT history, history::text FROM charts WHERE id = 1", &[]).await.map_err(err)?;
    let (envelope, text): (Raw, String) = (row.get(0), row.get(1));
    let copy = tx
        .prepare("INSERT INTO charts (id, tenant_id, history) VALUES ($1, safeguard.current_tenant(), $2)")
        .await
        .map_err(err)?;
    tx.execute(&copy, &[&3i32, &Binary(&envelope.0)]).await.map_err(err)?;
    let same: bool = tx
        .query_one("SELECT history::text = $1 FROM charts WHERE id = 3", &[&text])
        .await
        .map_err(err)?
        .get(0);
    if !same || envelope.0.len() != "Allergic to penicillin, née Ünal".len() + 33 {
        return Err(fail("the binary envelope did not round-trip byte for byte"));
    }
    // Malformed binary input is refused, not stored.
    tx.execute("SAVEPOINT bad", &[]).await.map_err(err)?;
    match tx.execute(&copy, &[&4i32, &Binary(b"not an envelope")]).await {
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::INVALID_BINARY_REPRESENTATION) => {}
        other => return Err(fail(&format!("malformed binary input: expected 22P03, got {other:?}"))),
    }
    tx.execute("ROLLBACK TO SAVEPOINT bad", &[]).await.map_err(err)?;
    tx.commit().await.map_err(err)?;
    Ok(format!(
        "encryption: typed (text, bytea, jsonb) and untyped parameters encrypt and decrypt back; \
         {}-byte binary envelope round-trips unchanged; malformed binary input refused (22P03)",
        envelope.0.len()
    ))
}
