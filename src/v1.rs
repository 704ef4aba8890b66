//! What the few plain version-1 C functions of the extension share (the validators of CHECK
//! constraints, the encryption casts and decrypt()): they run once per row, so they read their
//! varlena argument in place and build their result directly, instead of going through pgrx's
//! argument and result conversions.

use pgrx::pg_sys;

/// `PG_FUNCTION_INFO_V1`: the record each `pg_finfo_<name>` function returns.
pub(crate) const V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };

/// The payload of the varlena argument `n` (text, bytea or an envelope), detoasted; short values
/// are read where they are.
///
/// SAFETY: `fcinfo` is a call of a STRICT function with a varlena argument at `n`.
pub(crate) unsafe fn varlena_arg<'a>(fcinfo: pg_sys::FunctionCallInfo, n: usize) -> &'a [u8] {
    unsafe { varlena_bytes(pgrx::fcinfo::pg_getarg_datum_raw(fcinfo, n)) }
}

/// The payload of a varlena Datum, detoasted. Values stored in line and uncompressed (a 4-byte
/// header, or a short 1-byte one: nearly every value of a CHECK or a cast) are read where they
/// are without calling PostgreSQL, whose pg_detoast_datum_packed would return them unchanged but
/// costs a guarded call per row.
///
/// SAFETY: `datum` is a non-NULL varlena value.
pub(crate) unsafe fn varlena_bytes<'a>(datum: pg_sys::Datum) -> &'a [u8] {
    use pgrx::varlena::{varatt_is_1b, varatt_is_1b_e, varatt_is_4b_u, varlena_to_byte_slice};
    unsafe {
        let value = datum.cast_mut_ptr::<pg_sys::varlena>();
        let in_line = varatt_is_4b_u(value) || (varatt_is_1b(value) && !varatt_is_1b_e(value));
        if in_line {
            varlena_to_byte_slice(value)
        } else {
            varlena_to_byte_slice(pg_sys::pg_detoast_datum_packed(value))
        }
    }
}
