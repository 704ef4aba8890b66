//! The hash chain's blocks, as pure data: keys, the bytes a block stores, its link, and the
//! bookkeeping of sealing (keep the smallest keys) and verifying (find an entry in a window of
//! blocks). No PostgreSQL here; `chain` reads the log and writes the blocks.
//!
//! An entry's key is (txid, id): a seal takes every entry of a transaction that had finished, so
//! keys below its horizon never change once sealed, and a block is the set of entries whose key
//! lies after one key and through another. It stores, in key order, per entry: txid (8 bytes,
//! big-endian), id (16) and the SHA-256 of the entry's canonical encoding (32). Its link is
//! sha256(previous link || BLOCK_TAG || last_seq || after || through || latest_at || entries),
//! integers big-endian, so the range, the positions and every entry are all under the link.

use sha2::{Digest, Sha256};
use std::collections::BinaryHeap;

pub type Link = [u8; 32];
pub type Hash = [u8; 32];

/// Bytes per entry in a block: txid, id, hash.
pub const ENTRY_BYTES: usize = 8 + 16 + 32;
/// Names the block format inside every link, so a future format can never produce the same one.
const BLOCK_TAG: &[u8] = b"pg_safeguard audit block v1\0";

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub struct Key {
    pub txid: i64,
    /// The uuid's bytes: compared as PostgreSQL compares uuids (bytewise).
    pub id: [u8; 16],
}

impl Key {
    /// Below every entry's key.
    pub const MIN: Key = Key { txid: i64::MIN, id: [0; 16] };

    /// The last key of a transaction: a range through it holds all of that transaction's entries.
    pub fn last_of(txid: i64) -> Key {
        Key { txid, id: [0xff; 16] }
    }
}

/// One entry as a seal keeps it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Sealed {
    pub key: Key,
    pub hash: Hash,
    /// occurred_at, microseconds since 2000-01-01.
    pub occurred_at: i64,
}

impl Ord for Sealed {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key.cmp(&other.key)
    }
}

impl PartialOrd for Sealed {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// What a block row holds besides its entries and link.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Header {
    /// Chain position of the block's last entry (positions count entries from the chain's start).
    pub last_seq: i64,
    pub after: Key,
    pub through: Key,
    /// The newest entry's occurred_at; None for a block without entries (never written).
    pub latest_at: Option<i64>,
}

pub fn push_entry(out: &mut Vec<u8>, key: &Key, hash: &Hash) {
    out.extend_from_slice(&key.txid.to_be_bytes());
    out.extend_from_slice(&key.id);
    out.extend_from_slice(hash);
}

/// The key and hash of entry `n` of a block's (or a window's) entry bytes.
pub fn entry_at(entries: &[u8], n: usize) -> (Key, Hash) {
    let bytes = &entries[n * ENTRY_BYTES..(n + 1) * ENTRY_BYTES];
    let txid = i64::from_be_bytes(bytes[..8].try_into().expect("8 bytes"));
    let id = bytes[8..24].try_into().expect("16 bytes");
    let hash = bytes[24..].try_into().expect("32 bytes");
    (Key { txid, id }, hash)
}

pub fn block_link(previous: &Link, header: &Header, entries: &[u8]) -> Link {
    let mut hasher = Sha256::new();
    hasher.update(previous);
    hasher.update(BLOCK_TAG);
    hasher.update(header.last_seq.to_be_bytes());
    for key in [header.after, header.through] {
        hasher.update(key.txid.to_be_bytes());
        hasher.update(key.id);
    }
    hasher.update(header.latest_at.unwrap_or(i64::MIN).to_be_bytes());
    hasher.update(entries);
    hasher.finalize().into()
}

/// Keeps the `capacity` entries with the smallest keys among those offered, so that a seal's
/// memory stays bounded however many entries wait: what it cannot keep waits for its next pass.
/// Entries arrive mostly in key order (the log is written in transaction order), so they are
/// only collected, and sorted once at the end (a near-sorted run sorts in linear time), until
/// there are more than `capacity`: only then a heap evicts the largest key.
pub struct Smallest {
    collected: Vec<Sealed>,
    heap: Option<BinaryHeap<Sealed>>,
    capacity: usize,
    left_out: bool,
}

impl Smallest {
    pub fn new(capacity: usize) -> Self {
        Smallest { collected: Vec::new(), heap: None, capacity, left_out: false }
    }

    /// Whether an entry with this key would be kept (ask before paying for its hash).
    pub fn would_keep(&mut self, key: &Key) -> bool {
        let keep = match &self.heap {
            None => true,
            Some(heap) => heap.peek().is_some_and(|top| *key < top.key),
        };
        if !keep {
            self.left_out = true;
        }
        keep
    }

    pub fn push(&mut self, entry: Sealed) {
        match &mut self.heap {
            None => {
                self.collected.push(entry);
                if self.collected.len() > self.capacity {
                    let mut heap = BinaryHeap::from(std::mem::take(&mut self.collected));
                    heap.pop();
                    self.heap = Some(heap);
                    self.left_out = true;
                }
            }
            Some(heap) => {
                heap.push(entry);
                heap.pop();
                self.left_out = true;
            }
        }
    }

    /// The kept entries in key order, and whether any offered entry was left out.
    pub fn into_sorted(self) -> (Vec<Sealed>, bool) {
        let entries = match self.heap {
            Some(heap) => heap.into_sorted_vec(),
            None => {
                let mut collected = self.collected;
                collected.sort();
                collected
            }
        };
        (entries, self.left_out)
    }
}

/// Cuts a seal's entries (in key order, all after `after`) into blocks of at most `per_block`,
/// numbered on from `last_seq`; the last block reaches through `through`, the others through
/// their last entry. Returns each block's header and entry bytes.
pub fn cut_into_blocks(
    entries: &[Sealed],
    mut after: Key,
    through: Key,
    mut last_seq: i64,
    per_block: usize,
) -> Vec<(Header, Vec<u8>)> {
    let count = entries.chunks(per_block).count();
    entries
        .chunks(per_block)
        .enumerate()
        .map(|(n, chunk)| {
            let mut bytes = Vec::with_capacity(chunk.len() * ENTRY_BYTES);
            for entry in chunk {
                push_entry(&mut bytes, &entry.key, &entry.hash);
            }
            last_seq += chunk.len() as i64;
            let header = Header {
                last_seq,
                after,
                through: if n + 1 == count { through } else { chunk[chunk.len() - 1].key },
                latest_at: chunk.iter().map(|e| e.occurred_at).max(),
            };
            after = header.through;
            (header, bytes)
        })
        .collect()
}

/// Consecutive blocks checked together against the log: every entry whose key lies in
/// (after, through] must be listed, with the listed hash, and every listed entry must be found.
pub struct Window {
    pub after: Key,
    pub through: Key,
    /// The blocks' entry bytes, concatenated: in key order, as each block is and the blocks are.
    entries: Vec<u8>,
    seen: Vec<bool>,
}

impl Window {
    pub fn new(after: Key) -> Self {
        Window { after, through: after, entries: Vec::new(), seen: Vec::new() }
    }

    pub fn add_block(&mut self, header: &Header, entries: &[u8]) {
        self.through = header.through;
        self.entries.extend_from_slice(entries);
        self.seen.resize(self.entries.len() / ENTRY_BYTES, false);
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn covers(&self, key: &Key) -> bool {
        self.after < *key && *key <= self.through
    }

    /// The listed hash of the entry with this key (marking it found), or None if not listed.
    pub fn find(&mut self, key: &Key) -> Option<Hash> {
        let (mut low, mut high) = (0, self.len());
        while low < high {
            let middle = (low + high) / 2;
            let (listed, hash) = entry_at(&self.entries, middle);
            match listed.cmp(key) {
                std::cmp::Ordering::Less => low = middle + 1,
                std::cmp::Ordering::Greater => high = middle,
                std::cmp::Ordering::Equal => {
                    self.seen[middle] = true;
                    return Some(hash);
                }
            }
        }
        None
    }

    /// The first listed entry not found in the log.
    pub fn first_missing(&self) -> Option<Key> {
        self.seen.iter().position(|seen| !seen).map(|n| entry_at(&self.entries, n).0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(txid: i64, last_byte: u8) -> Key {
        let mut id = [0; 16];
        id[15] = last_byte;
        Key { txid, id }
    }

    fn sealed(txid: i64, last_byte: u8) -> Sealed {
        Sealed { key: key(txid, last_byte), hash: [last_byte; 32], occurred_at: txid * 10 }
    }

    #[test]
    fn keys_order_by_transaction_then_id() {
        assert!(Key::MIN < key(-5, 0));
        assert!(key(3, 9) < key(4, 0));
        assert!(key(4, 0) < key(4, 1));
        assert!(key(4, 200) < Key::last_of(4));
        assert!(Key::last_of(4) < key(5, 0));
    }

    #[test]
    fn the_smallest_keys_are_kept_and_leaving_any_out_is_reported() {
        let mut smallest = Smallest::new(3);
        for (txid, byte) in [(9, 1), (2, 1), (7, 1), (2, 0), (5, 1)] {
            if smallest.would_keep(&key(txid, byte)) {
                smallest.push(sealed(txid, byte));
            }
        }
        let (kept, left_out) = smallest.into_sorted();
        assert_eq!(kept.iter().map(|e| e.key).collect::<Vec<_>>(), vec![key(2, 0), key(2, 1), key(5, 1)]);
        assert!(left_out);
        // Many more than the capacity, in a scrambled order: the smallest, sorted.
        let mut many = Smallest::new(100);
        for n in 0..10_000i64 {
            let txid = (n * 7919) % 10_000;
            if many.would_keep(&key(txid, 0)) {
                many.push(sealed(txid, 0));
            }
        }
        let (kept, left_out) = many.into_sorted();
        assert_eq!(kept.iter().map(|e| e.key.txid).collect::<Vec<_>>(), (0..100).collect::<Vec<_>>());
        assert!(left_out);
        let mut roomy = Smallest::new(10);
        roomy.push(sealed(1, 1));
        assert!(!roomy.into_sorted().1);
    }

    #[test]
    fn blocks_tile_the_range_and_links_cover_everything() {
        let entries: Vec<Sealed> = (1..=5).map(|n| sealed(n, n as u8)).collect();
        let blocks = cut_into_blocks(&entries, Key::MIN, Key::last_of(9), 10, 2);
        let headers: Vec<Header> = blocks.iter().map(|b| b.0).collect();
        assert_eq!(headers.iter().map(|h| h.last_seq).collect::<Vec<_>>(), vec![12, 14, 15]);
        assert_eq!(headers[0].after, Key::MIN);
        assert_eq!(headers[1].after, headers[0].through);
        assert_eq!(headers[0].through, key(2, 2));
        assert_eq!(headers[2].through, Key::last_of(9));
        assert_eq!(headers[2].latest_at, Some(50));
        assert_eq!(blocks[0].1.len(), 2 * ENTRY_BYTES);
        assert_eq!(entry_at(&blocks[1].1, 1), (key(4, 4), [4; 32]));

        let link = block_link(&[0; 32], &headers[0], &blocks[0].1);
        let mut changed = blocks[0].1.clone();
        changed[40] ^= 1;
        assert_ne!(block_link(&[0; 32], &headers[0], &changed), link, "an entry's hash");
        let moved = Header { through: key(2, 3), ..headers[0] };
        assert_ne!(block_link(&[0; 32], &moved, &blocks[0].1), link, "the range");
        assert_ne!(block_link(&[1; 32], &headers[0], &blocks[0].1), link, "the previous link");
    }

    #[test]
    fn a_window_finds_listed_entries_and_reports_the_missing() {
        let entries: Vec<Sealed> = (1..=5).map(|n| sealed(n, n as u8)).collect();
        let blocks = cut_into_blocks(&entries, key(0, 0), Key::last_of(6), 0, 2);
        let mut window = Window::new(key(0, 0));
        for (header, bytes) in &blocks {
            window.add_block(header, bytes);
        }
        assert_eq!(window.len(), 5);
        assert!(window.covers(&key(6, 77)) && !window.covers(&key(0, 0)) && !window.covers(&key(7, 0)));
        assert_eq!(window.find(&key(3, 3)), Some([3; 32]));
        assert_eq!(window.find(&key(3, 4)), None);
        for n in [1, 2, 5] {
            assert!(window.find(&key(n, n as u8)).is_some());
        }
        assert_eq!(window.first_missing(), Some(key(4, 4)));
        window.find(&key(4, 4));
        assert_eq!(window.first_missing(), None);
    }
}
