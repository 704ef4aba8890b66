//! Parameters sent as the server's inferred type wants them, whatever that type is: how drivers
//! in other languages send strings (untyped text) and how raw bytes travel in binary. Shared by
//! the encryption and safeguard.ulid checks.

use bytes::BytesMut;
use std::error::Error;
use tokio_postgres::types::{Format, IsNull, ToSql, Type};

pub type BoxError = Box<dyn Error + Sync + Send>;

/// A string sent as text to whatever type the server infers: an untyped parameter.
#[derive(Debug)]
pub struct Untyped<'a>(pub &'a str);

impl ToSql for Untyped<'_> {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        out.extend_from_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }
    fn accepts(_: &Type) -> bool {
        true
    }
    fn encode_format(&self, _: &Type) -> Format {
        Format::Text
    }
    tokio_postgres::types::to_sql_checked!();
}

/// Bytes sent in binary format to whatever type the server infers (an envelope's or a ulid's
/// binary form).
#[derive(Debug)]
pub struct Binary<'a>(pub &'a [u8]);

impl ToSql for Binary<'_> {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        out.extend_from_slice(self.0);
        Ok(IsNull::No)
    }
    fn accepts(_: &Type) -> bool {
        true
    }
    tokio_postgres::types::to_sql_checked!();
}
