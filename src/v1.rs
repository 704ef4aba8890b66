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
    unsafe {
        let datum = pgrx::fcinfo::pg_getarg_datum_raw(fcinfo, n);
        pgrx::varlena::varlena_to_byte_slice(pg_sys::pg_detoast_datum_packed(datum.cast_mut_ptr()))
    }
}
