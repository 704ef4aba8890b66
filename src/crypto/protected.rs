//! A master key held in memory of its own: a page mapped for it alone, marked to be left out of
//! core dumps (`MADV_DONTDUMP`, Linux) and locked in RAM where the limits allow (so it is not
//! written to swap), zeroed and unmapped when dropped. Forked processes (the backends of a
//! postmaster that read the key at start) inherit the page and its "don't dump" mark.
//!
//! Where the platform refuses a step (no `MADV_DONTDUMP`, a zero `RLIMIT_MEMLOCK`), the key is
//! still held, only without that protection: memory hygiene, not a security boundary. (The data
//! keys a backend unwraps live in its ordinary memory: docs/encryption.md says to disable core
//! dumps on a server that holds patient data.)

use super::keys::Key;
use std::ops::Deref;
use std::ptr::NonNull;
use zeroize::Zeroize;

pub struct ProtectedKey {
    page: NonNull<Key>,
    length: usize,
}

impl ProtectedKey {
    /// Moves `key` into a page of its own (the caller's copy is zeroed when it is dropped, as
    /// every `Key` is). Falls back to an ordinary allocation if the page cannot be mapped.
    pub fn new(key: Key) -> ProtectedKey {
        // SAFETY: sysconf has no preconditions.
        let page_size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
        // SAFETY: an anonymous private mapping, no address hint; checked for MAP_FAILED below.
        let mapped = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                page_size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert!(mapped != libc::MAP_FAILED, "pg_safeguard: no memory could be mapped for the master key");
        // SAFETY: `mapped` is a fresh mapping of `page_size` bytes, page-aligned (so aligned for
        // Key), large enough for it; the advice and the lock only concern that mapping.
        unsafe {
            libc::madvise(mapped, page_size, libc::MADV_DONTDUMP);
            libc::mlock(mapped, page_size);
            let page = mapped.cast::<Key>();
            page.write(key);
            ProtectedKey { page: NonNull::new_unchecked(page), length: page_size }
        }
    }

    /// Whether the page is left out of core dumps, as `/proc/self/smaps` reports it ("dd" among
    /// its VmFlags): for the tests.
    pub fn excluded_from_core_dumps(&self) -> bool {
        let start = format!("{:x}-", self.page.as_ptr() as usize);
        let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
            return false;
        };
        let mut in_our_mapping = false;
        // A mapping's header line starts with its address range; its attribute lines with "Name:".
        for line in smaps.lines() {
            if !line.split_whitespace().next().is_some_and(|first| first.ends_with(':')) {
                in_our_mapping = line.starts_with(&start);
            } else if in_our_mapping && line.starts_with("VmFlags:") {
                return line.split_whitespace().any(|flag| flag == "dd");
            }
        }
        false
    }
}

impl Deref for ProtectedKey {
    type Target = Key;
    fn deref(&self) -> &Key {
        // SAFETY: the page holds a Key written in `new` and lives until `drop`.
        unsafe { self.page.as_ref() }
    }
}

impl Drop for ProtectedKey {
    fn drop(&mut self) {
        // SAFETY: the page holds a Key until here; it is zeroed, then unmapped, and never used again.
        unsafe {
            (*self.page.as_ptr()).zeroize();
            std::ptr::drop_in_place(self.page.as_ptr());
            libc::munlock(self.page.as_ptr().cast(), self.length);
            libc::munmap(self.page.as_ptr().cast(), self.length);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_held_out_of_core_dumps_and_reads_back() {
        let mut bytes = [0u8; 32];
        bytes.iter_mut().enumerate().for_each(|(i, b)| *b = i as u8);
        let key = ProtectedKey::new(zeroize::Zeroizing::new(bytes));
        assert_eq!(**key, bytes);
        assert!(key.excluded_from_core_dumps());
    }
}
