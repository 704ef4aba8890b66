//! Acting as another role for a moment, the way SECURITY DEFINER does: the audit log is written,
//! and the key table read, as their owner, while the caller holds no privilege on them.

use pgrx::pg_sys;

/// While it lives, the backend acts as another role (what SECURITY DEFINER does); dropping it
/// restores the caller's identity, also when an error unwinds through it.
pub(crate) struct AsUser {
    saved_user: pg_sys::Oid,
    saved_context: i32,
}

impl AsUser {
    pub(crate) fn switch_to(user: pg_sys::Oid) -> Self {
        Self::enter(|_| user, pg_sys::SECURITY_LOCAL_USERID_CHANGE)
    }

    /// The same role, but as PostgreSQL's referential-integrity checks run: a table's owner is
    /// not bound by the table's FORCE ROW LEVEL SECURITY (SECURITY_NOFORCE_RLS). Grants nothing
    /// a role does not have: it concerns only tables the role owns, whose forcing it could lift.
    pub(crate) fn without_forced_row_security() -> Self {
        Self::enter(|saved_user| saved_user, pg_sys::SECURITY_NOFORCE_RLS)
    }

    fn enter(user: impl FnOnce(pg_sys::Oid) -> pg_sys::Oid, flag: u32) -> Self {
        let (mut saved_user, mut saved_context) = (pg_sys::InvalidOid, 0);
        // SAFETY: plain calls into PostgreSQL's user-identity bookkeeping.
        unsafe {
            pg_sys::GetUserIdAndSecContext(&mut saved_user, &mut saved_context);
            pg_sys::SetUserIdAndSecContext(user(saved_user), saved_context | flag as i32);
        }
        AsUser {
            saved_user,
            saved_context,
        }
    }
}

impl Drop for AsUser {
    fn drop(&mut self) {
        // SAFETY: restores what switch_to saved.
        unsafe { pg_sys::SetUserIdAndSecContext(self.saved_user, self.saved_context) };
    }
}

