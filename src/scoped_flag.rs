//! A per-backend flag raised for the length of one operation: set_context() writing the context
//! settings, audit_purge() deleting expired entries, hard_delete() deleting rows. A check hook or
//! trigger elsewhere lets exactly that operation through. The guard lowers the flag when it is
//! dropped, also when an error unwinds through it, so a failed operation never leaves it up.

use std::cell::Cell;
use std::thread::LocalKey;

pub(crate) struct Raised(&'static LocalKey<Cell<bool>>);

impl Raised {
    pub(crate) fn raise(flag: &'static LocalKey<Cell<bool>>) -> Self {
        flag.set(true);
        Raised(flag)
    }
}

impl Drop for Raised {
    fn drop(&mut self) {
        self.0.set(false);
    }
}
