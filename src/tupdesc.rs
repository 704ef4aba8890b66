//! The attributes of a tuple descriptor, on every supported major. PostgreSQL 18 removed
//! `TupleDescData.attrs` (the attributes now follow an array of compact attributes); pgrx's
//! `PgTupleDesc` knows where they live on each major, so callers never read the field.

use pgrx::pg_sys;
use pgrx::PgTupleDesc;

/// The descriptor's attributes, in column order (dropped columns included: check `attisdropped`).
///
/// # Safety
/// `desc` must be a valid tuple descriptor that outlives the returned slice.
pub(crate) unsafe fn attributes<'a>(desc: pg_sys::TupleDesc) -> &'a [pg_sys::FormData_pg_attribute] {
    // SAFETY: the caller hands a valid descriptor; its attributes are one contiguous array on
    // every major, which pgrx's accessor finds the start of.
    unsafe {
        let natts = usize::try_from((*desc).natts).unwrap_or(0);
        if natts == 0 {
            return &[];
        }
        let wrapped = PgTupleDesc::from_pg_unchecked(desc);
        let first: *const pg_sys::FormData_pg_attribute = wrapped.get(0).expect("a descriptor with natts > 0");
        std::slice::from_raw_parts(first, natts)
    }
}
