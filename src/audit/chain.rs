//! The audit log's hash chain, extended and checked in Rust: `audit_seal()` and
//! `audit_verify()` (SQL wrappers in `sql/audit_chain.sql`) call `_audit_seal_chain()` and
//! `_audit_verify_chain()`.
//!
//! The chain and its encoding are those of 0.1.0, so chains sealed before verify after: each
//! sealed entry's link is sha256(previous link || canonical encoding of the entry), the encoding
//! being every column in a fixed order, each `quote_nullable(column::text)`, joined by commas,
//! UTF-8 (`safeguard._audit_canonical`, kept as the reference; the golden test compares every
//! link written here with it). The columns are read in binary: Rust prints uuids, the epoch,
//! integers, names and text the way `::text` does, and calls PostgreSQL's own functions for the
//! rest (jsonb and name[] output, `text(inet)`); then quotes, joins and hashes, streaming through
//! a cursor in batches, so memory stays bounded whatever the size of the log.

use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use pgrx::PgMemoryContexts;
use sha2::{Digest, Sha256};

use super::blocks::{block_link, cut_into_blocks, Hash, Header, Key, Link, Sealed, Smallest, Window, ENTRY_BYTES};

/// The columns of an entry in canonical order, as stored: Rust prints them the way
/// `column::text` does (uuids, the epoch, integers, names, text) or through PostgreSQL's own
/// output functions (jsonb, inet, name[]), which saves the executor 17 casts and a wide result
/// row per entry.
/// The last two, the token columns of 0.2.0, are encoded only when an entry has a token (see
/// `encode`): entries without one keep 0.1.0's encoding.
const CANONICAL_COLUMNS: &str = "l.id, l.occurred_at, l.tenant_id, l.actor_id, l.impersonator_id, \
    l.request_id, l.db_user, l.client_addr, l.application_name, l.txid, l.table_schema, \
    l.table_name, l.operation, l.record_id, l.old_data, l.new_data, l.changed_columns, \
    l.token_id, l.token_subject";
/// The columns every entry's encoding has.
const CANONICAL_COUNT: usize = 17;

/// How each canonical column is printed.
#[derive(Clone, Copy)]
enum Printed {
    Uuid,
    /// `extract(epoch FROM timestamptz)::text`: numeric with six decimals.
    Epoch,
    Text,
    Name,
    Int8,
    /// `inet::text`: the address with its mask length always (`inet_out` leaves it out for a
    /// single host).
    InetText,
    /// Through the type's output function: the index into `Printers`.
    Output(usize),
}

const PRINTED: [Printed; CANONICAL_COUNT] = [
    Printed::Uuid,      // id
    Printed::Epoch,     // occurred_at
    Printed::Uuid,      // tenant_id
    Printed::Uuid,      // actor_id
    Printed::Uuid,      // impersonator_id
    Printed::Text,      // request_id
    Printed::Name,      // db_user
    Printed::InetText,  // client_addr
    Printed::Text,      // application_name
    Printed::Int8,      // txid
    Printed::Name,      // table_schema
    Printed::Name,      // table_name
    Printed::Text,      // operation
    Printed::Output(0), // record_id (jsonb)
    Printed::Output(0), // old_data
    Printed::Output(0), // new_data
    Printed::Output(1), // changed_columns (name[])
];

/// Rows fetched per batch: large enough to make the round trips through SPI negligible, small
/// enough for a batch (about half a megabyte) to stay in the CPU's cache between being copied
/// out of the log and read (measured: 5 % faster than 10,000 over a million entries).
const BATCH: i64 = 1_000;
/// A NOTICE every this many entries, for runs long enough to want one.
const PROGRESS_EVERY: i64 = 1_000_000;
/// Entries a seal hashes per pass over the unsealed range (64 bytes each in memory): a larger
/// backlog takes more passes. (Small in the #[pg_test] build, so that its tests seal in several
/// passes and blocks.)
#[cfg(not(feature = "pg_test"))]
const SEAL_PASS_ENTRIES: usize = 1 << 20;
#[cfg(feature = "pg_test")]
const SEAL_PASS_ENTRIES: usize = 1_000;
/// Entries per block: about 0.9 MB of hashes per block row.
#[cfg(not(feature = "pg_test"))]
const BLOCK_ENTRIES: usize = 16_384;
#[cfg(feature = "pg_test")]
const BLOCK_ENTRIES: usize = 300;
/// Blocks verified together against one read of their range of the log (at most this many
/// times BLOCK_ENTRIES entries, 56 bytes each in memory).
const VERIFY_BLOCKS_PER_READ: i64 = 64;


/// `quote_nullable(value)` as PostgreSQL writes it: NULL unquoted; otherwise the value in single
/// quotes with quotes and backslashes doubled, prefixed with E when it holds a backslash.
pub fn push_quoted(out: &mut Vec<u8>, value: Option<&[u8]>) {
    let Some(value) = value else {
        out.extend_from_slice(b"NULL");
        return;
    };
    if memchr::memchr2(b'\'', b'\\', value).is_none() {
        // The common case, copied at once.
        out.push(b'\'');
        out.extend_from_slice(value);
        out.push(b'\'');
        return;
    }
    if value.contains(&b'\\') {
        out.push(b'E');
    }
    out.push(b'\'');
    for &byte in value {
        if byte == b'\'' || byte == b'\\' {
            out.push(byte);
        }
        out.push(byte);
    }
    out.push(b'\'');
}

/// The link that follows `previous` for an entry with this canonical encoding.
pub fn next_link(previous: &Link, canonical: &[u8]) -> Link {
    let mut hasher = Sha256::new();
    hasher.update(previous);
    hasher.update(canonical);
    hasher.finalize().into()
}

fn spi_failed(what: &str, error: impl std::fmt::Display) -> ! {
    pgrx::error!("pg_safeguard: {what} failed: {error}")
}

/// One fetched row, deformed once (reading columns one by one through SPI would walk the tuple
/// from its start for each of them).
struct Row {
    values: Vec<pg_sys::Datum>,
    nulls: Vec<bool>,
}

impl Row {
    fn with_columns(count: usize) -> Self {
        Row { values: vec![pg_sys::Datum::from(0); count], nulls: vec![true; count] }
    }

    /// SAFETY: `tuple` and `desc` come from the same SPI tuple table, with `values.len()` columns.
    unsafe fn deform(&mut self, tuple: pg_sys::HeapTuple, desc: pg_sys::TupleDesc) {
        pg_sys::heap_deform_tuple(tuple, desc, self.values.as_mut_ptr(), self.nulls.as_mut_ptr());
    }

    /// The bytes of a text or bytea column (0-based), None for NULL.
    fn bytes(&self, column: usize) -> Option<&[u8]> {
        if self.nulls[column] {
            return None;
        }
        // SAFETY: a varlena datum of the tuple being read; a packed or compressed value is
        // expanded in the current (per-row) memory context.
        unsafe {
            let raw = self.values[column].cast_mut_ptr::<pg_sys::varlena>();
            Some(pgrx::varlena::varlena_to_byte_slice(pg_sys::pg_detoast_datum_packed(raw)))
        }
    }

    /// The 16 bytes of a non-NULL uuid column.
    fn uuid_bytes(&self, column: usize) -> &[u8; 16] {
        // SAFETY: a uuid datum points to its 16 bytes, in the tuple being read.
        unsafe { &*self.values[column].cast_mut_ptr::<[u8; 16]>() }
    }

    fn uuid(&self, column: usize) -> Option<pgrx::Uuid> {
        (!self.nulls[column]).then(|| pgrx::Uuid::from_bytes(*self.uuid_bytes(column)))
    }

    fn boolean(&self, column: usize) -> Option<bool> {
        (!self.nulls[column]).then(|| self.values[column].value() != 0)
    }
}

/// The functions for what Rust does not print itself: the output functions of jsonb and name[]
/// (what `::text` runs for them), and `text(inet)`.
struct Printers {
    functions: [pg_sys::FmgrInfo; 2],
    inet_text: pg_sys::FmgrInfo,
    utf8: bool,
}

impl Printers {
    fn new() -> Self {
        let mut inet_text = pg_sys::FmgrInfo::default();
        // SAFETY: a built-in function; fmgr_info fills the struct.
        unsafe { pg_sys::fmgr_info(pg_sys::Oid::from(pg_sys::F_TEXT_INET), &mut inet_text) };
        let functions = [pg_sys::JSONBOID, pg_sys::NAMEARRAYOID].map(|type_oid| {
            // SAFETY: catalog lookups of built-in types; fmgr_info fills the struct.
            unsafe {
                let mut output = pg_sys::InvalidOid;
                let mut varlena = false;
                pg_sys::getTypeOutputInfo(type_oid, &mut output, &mut varlena);
                let mut info = pg_sys::FmgrInfo::default();
                pg_sys::fmgr_info(output, &mut info);
                info
            }
        });
        Printers { functions, inet_text, utf8: server_is_utf8() }
    }

    /// The canonical encoding of an entry whose 19 columns start at column `first` (0-based).
    fn encode(&mut self, out: &mut Vec<u8>, row: &Row, first: usize) {
        self.encode_columns(out, row, first);
        // The token's id and subject, both quoted, only when the entry has either (as
        // safeguard._audit_canonical does).
        let (token_id, token_subject) = (first + CANONICAL_COUNT, first + CANONICAL_COUNT + 1);
        if !row.nulls[token_id] || !row.nulls[token_subject] {
            for column in [token_id, token_subject] {
                out.push(b',');
                match row.bytes(column) {
                    Some(text) if !self.utf8 => push_quoted(out, Some(&to_utf8(text))),
                    value => push_quoted(out, value),
                }
            }
        }
    }

    /// The 17 columns every entry's encoding has.
    fn encode_columns(&mut self, out: &mut Vec<u8>, row: &Row, first: usize) {
        out.clear();
        let mut text = Vec::with_capacity(64);
        for (n, printed) in PRINTED.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            let column = first + n;
            if row.nulls[column] {
                push_quoted(out, None);
                continue;
            }
            text.clear();
            let value = row.values[column];
            match *printed {
                Printed::Uuid => push_uuid(&mut text, row.uuid_bytes(column)),
                Printed::Epoch => push_epoch(&mut text, value.value() as i64),
                Printed::Int8 => push_integer(&mut text, (value.value() as i64).into()),
                Printed::Text => text.extend_from_slice(row.bytes(column).unwrap_or_default()),
                Printed::Name => {
                    // SAFETY: a name datum points to a NUL-terminated NameData.
                    let name = unsafe { std::ffi::CStr::from_ptr(value.cast_mut_ptr::<std::ffi::c_char>()) };
                    text.extend_from_slice(name.to_bytes());
                }
                Printed::InetText => {
                    // SAFETY: text(inet) of an inet datum returns a text datum (per-row memory).
                    let printed = unsafe {
                        pg_sys::FunctionCall1Coll(&mut self.inet_text, pg_sys::InvalidOid, value)
                    };
                    // SAFETY: a freshly made text datum.
                    text.extend_from_slice(unsafe {
                        pgrx::varlena::varlena_to_byte_slice(printed.cast_mut_ptr::<pg_sys::varlena>())
                    });
                }
                Printed::Output(function) => {
                    // SAFETY: the output function of this column's type; it returns a palloc'd
                    // C string in the per-row memory context.
                    let printed = unsafe {
                        std::ffi::CStr::from_ptr(pg_sys::OutputFunctionCall(&mut self.functions[function], value))
                    };
                    text.extend_from_slice(printed.to_bytes());
                }
            }
            if self.utf8 {
                push_quoted(out, Some(&text));
            } else {
                push_quoted(out, Some(&to_utf8(&text)));
            }
        }
    }
}

/// A uuid as `uuid_out` prints it: lowercase hex, hyphens after 4, 6, 8 and 10 bytes.
pub fn push_uuid(out: &mut Vec<u8>, bytes: &[u8; 16]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (n, byte) in bytes.iter().enumerate() {
        if matches!(n, 4 | 6 | 8 | 10) {
            out.push(b'-');
        }
        out.push(HEX[(byte >> 4) as usize]);
        out.push(HEX[(byte & 0xf) as usize]);
    }
}

/// `extract(epoch FROM t)::text` for a timestamptz (microseconds since 2000-01-01): numeric with
/// exactly six decimals, a sign for times before 1970; the infinities as numeric prints them.
pub fn push_epoch(out: &mut Vec<u8>, timestamp: i64) {
    const UNIX_EPOCH_IN_POSTGRES_MICROS: i128 = 946_684_800_000_000;
    match timestamp {
        i64::MAX => out.extend_from_slice(b"Infinity"),
        i64::MIN => out.extend_from_slice(b"-Infinity"),
        _ => {
            let micros = timestamp as i128 + UNIX_EPOCH_IN_POSTGRES_MICROS;
            if micros < 0 {
                out.push(b'-');
            }
            let magnitude = micros.unsigned_abs();
            push_integer(out, (magnitude / 1_000_000) as i128);
            let fraction = (magnitude % 1_000_000) as u32;
            out.push(b'.');
            for divisor in [100_000, 10_000, 1_000, 100, 10, 1] {
                out.push(b'0' + (fraction / divisor % 10) as u8);
            }
        }
    }
}

/// An integer in decimal, as `int8out` prints it (without going through `fmt`, which is most of
/// the cost at a million entries).
pub fn push_integer(out: &mut Vec<u8>, value: i128) {
    if value < 0 {
        out.push(b'-');
    }
    let mut magnitude = value.unsigned_abs();
    let mut digits = [0u8; 40];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (magnitude % 10) as u8;
        magnitude /= 10;
        if magnitude == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

fn to_utf8(text: &[u8]) -> Vec<u8> {
    // SAFETY: pg_server_to_any reads `len` bytes and returns them, or a palloc'd conversion.
    unsafe {
        let converted = pg_sys::pg_server_to_any(text.as_ptr().cast(), text.len() as i32, pg_sys::pg_enc::PG_UTF8 as i32);
        std::slice::from_raw_parts(converted.cast::<u8>(), libc::strlen(converted)).to_vec()
    }
}

fn server_is_utf8() -> bool {
    // SAFETY: reads the database encoding, fixed for the session.
    unsafe { pg_sys::GetDatabaseEncoding() == pg_sys::pg_enc::PG_UTF8 as i32 }
}

/// Runs `process` over every row of `query` (deformed into a `Row`), fetched in batches through
/// a cursor, until it returns false; `between` runs after each batch with `client` free for
/// statements of its own; both share `state`. Each batch's tuples are freed once processed and
/// each row's memory before the next row, so memory stays bounded.
fn for_each_row<'conn, S>(
    client: &mut SpiClient<'conn>,
    query: &str,
    args: &[DatumWithOid<'_>],
    state: &mut S,
    mut process: impl FnMut(&mut S, &Row) -> bool,
    mut between: impl FnMut(&mut S, &mut SpiClient<'conn>),
) {
    let name = client.open_cursor(query, args).detach_into_name();
    let mut row_memory = PgMemoryContexts::new("pg_safeguard audit chain row");
    loop {
        let mut cursor = client
            .find_cursor(&name)
            .unwrap_or_else(|e| spi_failed("reopening the chain cursor", e));
        let fetched = cursor
            .fetch(BATCH)
            .unwrap_or_else(|e| spi_failed("reading the audit log", e))
            .len();
        // SAFETY: the tuple table SPI_cursor_fetch just made (pgrx's view of it is dropped);
        // freed below, instead of at SPI_finish with every other batch.
        let table = unsafe { pg_sys::SPI_tuptable };
        let mut go_on = fetched > 0;
        if go_on {
            // SAFETY: the table holds `fetched` tuples of its own descriptor.
            unsafe {
                let desc = (*table).tupdesc;
                let mut row = Row::with_columns((*desc).natts as usize);
                for n in 0..fetched {
                    // Reset per row: the context keeps its first block, so the output
                    // functions' strings reuse the same memory instead of paging in more.
                    row_memory.reset();
                    row_memory.switch_to(|_| {
                        row.deform(*(*table).vals.add(n), desc);
                        go_on = process(state, &row);
                    });
                    if !go_on {
                        break;
                    }
                }
            }
        }
        unsafe { pg_sys::SPI_freetuptable(table) };
        if !go_on {
            drop(cursor); // closes the portal
            return;
        }
        cursor.detach_into_name();
        between(state, client);
    }
}

fn zero_link() -> Link {
    [0; 32]
}

fn as_link(bytes: &[u8]) -> Link {
    bytes
        .try_into()
        .unwrap_or_else(|_| pgrx::error!("pg_safeguard: a stored chain link is not 32 bytes"))
}

fn as_id(uuid: pgrx::Uuid) -> [u8; 16] {
    *uuid.as_bytes()
}

fn progress(what: &str, done: i64) {
    if done % PROGRESS_EVERY == 0 {
        pgrx::notice!("pg_safeguard: {what} {done} audit entries so far");
    }
}

/// Where the chain goes on: the position and link of its last entry (its last block, else the
/// last per-entry link of 0.1.0 or the last purge, else the start), and the key after which
/// entries are not sealed yet.
struct Head {
    seq: i64,
    link: Link,
    after: Key,
}

fn chain_head(client: &SpiClient<'_>) -> Head {
    let block = client
        .select(
            "SELECT b.last_seq, b.link, b.through_txid, b.through_id FROM safeguard.audit_chain_blocks b
              ORDER BY b.last_seq DESC LIMIT 1",
            None,
            &[],
        )
        .unwrap_or_else(|e| spi_failed("reading the chain's last block", e));
    if !block.is_empty() {
        let row = block.first();
        let seq = row.get::<i64>(1).ok().flatten();
        let link = row.get::<&[u8]>(2).ok().flatten();
        let txid = row.get::<i64>(3).ok().flatten();
        let id = row.get::<pgrx::Uuid>(4).ok().flatten();
        let (Some(seq), Some(link), Some(txid), Some(id)) = (seq, link, txid, id) else {
            pgrx::error!("pg_safeguard: the chain's last block has NULL columns");
        };
        return Head { seq, link: as_link(link), after: Key { txid, id: as_id(id) } };
    }
    // No block yet: after 0.1.0's per-entry links (or their purge), which sealed every entry
    // below the last seal's horizon.
    let head = client
        .select(
            "SELECT seq, link, (SELECT max(s.horizon) FROM safeguard.audit_seals s) FROM (
                 (SELECT c.seq, c.link FROM safeguard.audit_chain c ORDER BY c.seq DESC LIMIT 1)
                 UNION ALL
                 (SELECT p.through_seq, p.through_link FROM safeguard.audit_purges p
                   ORDER BY p.through_seq DESC LIMIT 1)
                 UNION ALL
                 (SELECT 0, NULL)) h
             ORDER BY seq DESC LIMIT 1",
            None,
            &[],
        )
        .unwrap_or_else(|e| spi_failed("reading the chain's head", e));
    let (seq, link, horizon) = head
        .first()
        .get_three::<i64, &[u8], i64>()
        .unwrap_or_else(|e| spi_failed("reading the chain's head", e));
    Head {
        seq: seq.unwrap_or(0),
        link: link.map(as_link).unwrap_or_else(zero_link),
        after: horizon.map(|h| Key::last_of(h - 1)).unwrap_or(Key::MIN),
    }
}

/// The entries of the log read for sealing and verifying: the canonical columns, over a range of
/// transaction numbers (found through the log's block-range index on txid).
fn log_range_query() -> String {
    format!("SELECT {CANONICAL_COLUMNS} FROM safeguard.audit_log l WHERE l.txid >= $1 AND l.txid <= $2")
}

/// Column positions in `CANONICAL_COLUMNS`.
const ID: usize = 0;
const OCCURRED_AT: usize = 1;
const TXID: usize = 9;

fn key_of(row: &Row) -> Key {
    Key {
        txid: row.values[TXID].value() as i64,
        id: *row.uuid_bytes(ID),
    }
}

fn entry_hash(printers: &mut Printers, encoded: &mut Vec<u8>, row: &Row) -> Hash {
    printers.encode(encoded, row, 0);
    Sha256::digest(encoded.as_slice()).into()
}

/// Extends the chain over every entry of a finished transaction not sealed yet, in blocks;
/// returns how many. One sealer at a time (advisory lock); writers are never blocked.
#[pg_extern(volatile, parallel_unsafe)]
fn _audit_seal_chain() -> i64 {
    let offset = super::era::txid_offset();
    Spi::connect_mut(|client| {
        client
            .update("SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('safeguard.audit_seal'))", None, &[])
            .unwrap_or_else(|e| spi_failed("taking the seal lock", e));
        // Only transactions that had all finished: none can add an entry inside the sealed range.
        let horizon = offset
            + client
                .select("SELECT pg_catalog.txid_snapshot_xmin(pg_catalog.txid_current_snapshot())", None, &[])
                .and_then(|t| t.first().get_one::<i64>())
                .ok()
                .flatten()
                .unwrap_or_else(|| pgrx::error!("pg_safeguard: reading the transaction horizon failed"));
        let head = chain_head(client);
        let (mut seq, mut link, mut after) = (head.seq, head.link, head.after);
        let query = log_range_query();
        let mut printers = Printers::new();
        let mut encoded = Vec::with_capacity(1024);
        // Pass after pass, the smallest keys first, at most SEAL_PASS_ENTRIES each: a backlog of
        // any size is sealed in bounded memory.
        loop {
            let mut smallest = Smallest::new(SEAL_PASS_ENTRIES);
            let mut read: i64 = 0;
            for_each_row(
                client,
                &query,
                &[after.txid.into(), (horizon - 1).into()],
                &mut (),
                |_, row| {
                    let key = key_of(row);
                    if key > after && smallest.would_keep(&key) {
                        let hash = entry_hash(&mut printers, &mut encoded, row);
                        smallest.push(Sealed { key, hash, occurred_at: row.values[OCCURRED_AT].value() as i64 });
                        read += 1;
                        progress("read for sealing", read);
                    }
                    true
                },
                |_, _| {},
            );
            let (entries, left_out) = smallest.into_sorted();
            if entries.is_empty() {
                break;
            }
            let through = if left_out { entries[entries.len() - 1].key } else { Key::last_of(horizon - 1) };
            for (header, bytes) in cut_into_blocks(&entries, after, through, seq, BLOCK_ENTRIES) {
                link = block_link(&link, &header, &bytes);
                insert_block(client, &header, &bytes, &link);
                (seq, after) = (header.last_seq, header.through);
            }
            if !left_out {
                break;
            }
        }
        let sealed = seq - head.seq;
        if sealed > 0 {
            client
                .update(
                    "INSERT INTO safeguard.audit_seals (first_seq, last_seq, horizon, entries, last_link)
                     VALUES ($1, $2, $3, $4, $5)",
                    None,
                    &[(head.seq + 1).into(), seq.into(), horizon.into(), sealed.into(), link.as_slice().into()],
                )
                .unwrap_or_else(|e| spi_failed("recording the seal", e));
        }
        sealed
    })
}

fn insert_block(client: &mut SpiClient<'_>, header: &Header, entries: &[u8], link: &Link) {
    let latest_at = header.latest_at.and_then(|t| TimestampWithTimeZone::try_from(t).ok());
    client
        .update(
            "INSERT INTO safeguard.audit_chain_blocks
                    (last_seq, after_txid, after_id, through_txid, through_id, latest_at, hashes, link)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            None,
            &[
                header.last_seq.into(),
                header.after.txid.into(),
                pgrx::Uuid::from_bytes(header.after.id).into(),
                header.through.txid.into(),
                pgrx::Uuid::from_bytes(header.through.id).into(),
                latest_at.into(),
                entries.into(),
                link.as_slice().into(),
            ],
        )
        .unwrap_or_else(|e| spi_failed("writing a chain block", e));
}

/// The verdict of a verification: what `audit_verify()` returns.
type Verdict = (bool, i64, Option<pgrx::Uuid>, String);

fn bad(checked: i64, id: Option<[u8; 16]>, detail: &str) -> Verdict {
    (false, checked, id.map(pgrx::Uuid::from_bytes), detail.to_owned())
}

/// Recomputes the chain from its start (or the last purge) and checks every sealed entry; then
/// looks for entries written around the triggers. The first problem found is the verdict.
#[pg_extern(stable, parallel_unsafe)]
fn _audit_verify_chain() -> TableIterator<
    'static,
    (
        name!(ok, bool),
        name!(rows_checked, i64),
        name!(first_bad_id, Option<pgrx::Uuid>),
        name!(detail, String),
    ),
> {
    let offset = super::era::txid_offset_read_only();
    TableIterator::once(Spi::connect_mut(|client| verify(client, offset).unwrap_or_else(|verdict| verdict)))
}

fn verify(client: &mut SpiClient<'_>, offset: i64) -> Result<Verdict, Verdict> {
    // After a purge the chain resumes from the last purged link.
    let (purged_through, purged_link) = client
        .select(
            "SELECT p.through_seq, p.through_link FROM safeguard.audit_purges p ORDER BY p.through_seq DESC LIMIT 1",
            None,
            &[],
        )
        .and_then(|t| if t.is_empty() { Ok((None, None)) } else { t.first().get_two::<i64, &[u8]>() })
        .unwrap_or_else(|e| spi_failed("reading the last purge", e));
    let (purged_through, purged_link) = match (purged_through, purged_link) {
        (Some(seq), Some(link)) => (seq, as_link(link)),
        _ => (0, zero_link()),
    };
    let mut printers = Printers::new();
    let (mut checked, mut seq, mut link) = verify_entry_links(client, &mut printers, purged_through, purged_link)?;
    // Blocks: the links in order, then each window of blocks against the log.
    let mut previous: Option<Key> = None;
    let mut first_after: Option<Key> = None;
    let query = log_range_query();
    let mut encoded = Vec::with_capacity(1024);
    let mut next_seq = purged_through;
    loop {
        let blocks = read_blocks(client, next_seq, VERIFY_BLOCKS_PER_READ);
        if blocks.is_empty() {
            break;
        }
        let mut window: Option<Window> = None;
        for (header, entries, stored) in &blocks {
            next_seq = header.last_seq;
            if previous.is_some_and(|p| p != header.after) || header.after >= header.through {
                return Err(bad(checked, None, "the chain's blocks do not tile the sealed range: a block was removed or altered"));
            }
            if entries.len() % ENTRY_BYTES != 0 || header.last_seq - seq != (entries.len() / ENTRY_BYTES) as i64 {
                return Err(bad(checked, None, "a chain block's positions do not match its entries: the block was altered"));
            }
            link = block_link(&link, header, entries);
            if link.as_slice() != stored.as_slice() {
                return Err(bad(checked, None, "a chain block does not match its link: the chain was altered"));
            }
            first_after.get_or_insert(header.after);
            previous = Some(header.through);
            seq = header.last_seq;
            window.get_or_insert_with(|| Window::new(header.after)).add_block(header, entries);
        }
        let Some(mut window) = window else { continue };
        let mut verdict = None;
        for_each_row(
            client,
            &query,
            &[window.after.txid.into(), window.through.txid.into()],
            &mut (),
            |_, row| {
                let key = key_of(row);
                if !window.covers(&key) {
                    return true;
                }
                let Some(listed) = window.find(&key) else {
                    verdict = Some(bad(checked, Some(key.id), "an entry that no seal lists lies inside a sealed range: it was inserted out of band"));
                    return false;
                };
                if entry_hash(&mut printers, &mut encoded, row) != listed {
                    verdict = Some(bad(checked, Some(key.id), "a sealed entry does not match its seal: it was modified"));
                    return false;
                }
                checked += 1;
                progress("verified", checked);
                true
            },
            |_, _| {},
        );
        if let Some(verdict) = verdict {
            return Err(verdict);
        }
        if let Some(missing) = window.first_missing() {
            return Err(bad(checked, Some(missing.id), "a sealed entry is missing: it was deleted"));
        }
    }
    // Everything at or below the chain's first checked key is either one of 0.1.0's per-entry
    // links or was purged: an entry there that is neither, one that claims no transaction, or
    // one that has not begun yet, was written around the triggers (they always record the
    // writing transaction). The snapshot's xmax is the newest finished transaction plus one:
    // the verifying transaction's own entries (visible to it) may lie above it.
    let below = first_after.unwrap_or_else(|| chain_head(client).after);
    // Three reads through the log's block-range index on txid (each touches only the ranges that
    // may hold such entries and the unsummarized tail); OFFSET 0 keeps the planner from walking
    // the whole primary key instead to return the lowest id first.
    let stray = client
        .select(
            "SELECT s.id FROM (
                 SELECT l.id FROM safeguard.audit_log l WHERE l.txid IS NULL
                 UNION ALL
                 SELECT l.id FROM safeguard.audit_log l
                  WHERE l.txid >= pg_catalog.txid_snapshot_xmax(pg_catalog.txid_current_snapshot()) + $1
                    AND l.txid IS DISTINCT FROM pg_catalog.txid_current_if_assigned() + $1
                 UNION ALL
                 SELECT l.id FROM safeguard.audit_log l
                  WHERE l.txid <= $2 AND (l.txid, l.id) <= ($2, $3)
                    AND NOT EXISTS (SELECT 1 FROM safeguard.audit_chain c WHERE c.log_id = l.id)
                 OFFSET 0) s
              ORDER BY s.id LIMIT 1",
            None,
            &[offset.into(), below.txid.into(), pgrx::Uuid::from_bytes(below.id).into()],
        )
        .and_then(|t| if t.is_empty() { Ok(None) } else { t.first().get_one::<pgrx::Uuid>() })
        .unwrap_or_else(|e| spi_failed("looking for entries written around the triggers", e));
    if let Some(stray) = stray {
        return Err((
            false,
            checked,
            Some(stray),
            "an entry that no seal covers claims a transaction that ended before the last seal, none, or one not yet begun: it was inserted out of band".into(),
        ));
    }
    Ok((true, checked, None, format!("{checked} sealed entries verified")))
}

/// Up to `limit` blocks after position `after_seq`, in chain order: header, entries, link.
fn read_blocks(client: &SpiClient<'_>, after_seq: i64, limit: i64) -> Vec<(Header, Vec<u8>, Vec<u8>)> {
    let table = client
        .select(
            "SELECT b.last_seq, b.after_txid, b.after_id, b.through_txid, b.through_id,
                    b.latest_at, b.hashes, b.link
               FROM safeguard.audit_chain_blocks b WHERE b.last_seq > $1 ORDER BY b.last_seq LIMIT $2",
            None,
            &[after_seq.into(), limit.into()],
        )
        .unwrap_or_else(|e| spi_failed("reading the chain's blocks", e));
    let mut blocks = Vec::with_capacity(table.len());
    for row in table {
        let get = |n: usize| row.get_datum_by_ordinal(n).unwrap_or_else(|e| spi_failed("reading a block", e));
        let int8 = |n: usize| get(n).value::<i64>().ok().flatten();
        let uuid = |n: usize| get(n).value::<pgrx::Uuid>().ok().flatten().map(as_id);
        let bytes = |n: usize| get(n).value::<&[u8]>().ok().flatten().map(<[u8]>::to_vec);
        let latest_at = get(6).value::<TimestampWithTimeZone>().ok().flatten().map(TimestampWithTimeZone::into_inner);
        let (Some(last_seq), Some(after_txid), Some(after_id), Some(through_txid), Some(through_id), Some(entries), Some(link)) =
            (int8(1), int8(2), uuid(3), int8(4), uuid(5), bytes(7), bytes(8))
        else {
            pgrx::error!("pg_safeguard: a chain block has NULL columns");
        };
        let header = Header {
            last_seq,
            after: Key { txid: after_txid, id: after_id },
            through: Key { txid: through_txid, id: through_id },
            latest_at,
        };
        blocks.push((header, entries, link));
    }
    blocks
}

/// Deletes the log entries listed by the blocks after the last purge through position
/// `through_seq` (a block's last position); returns how many. Only listed entries are deleted:
/// one written around the triggers into a sealed range stays, for audit_verify() to report.
pub(super) fn delete_entries_of_blocks(client: &mut SpiClient<'_>, through_seq: i64) -> i64 {
    let mut after_seq = client
        .select("SELECT max(p.through_seq) FROM safeguard.audit_purges p", None, &[])
        .and_then(|t| t.first().get_one::<i64>())
        .unwrap_or_else(|e| spi_failed("reading the last purge", e))
        .unwrap_or(0);
    let mut deleted = 0;
    while after_seq < through_seq {
        let blocks = read_blocks(client, after_seq, 16);
        if blocks.is_empty() {
            break;
        }
        for (header, entries, _) in blocks.iter().take_while(|(header, _, _)| header.last_seq <= through_seq) {
            let ids: Vec<pgrx::Uuid> = (0..entries.len() / ENTRY_BYTES)
                .map(|n| pgrx::Uuid::from_bytes(super::blocks::entry_at(entries, n).0.id))
                .collect();
            deleted += client
                .update("DELETE FROM safeguard.audit_log l WHERE l.id = ANY ($1)", None, &[ids.into()])
                .unwrap_or_else(|e| spi_failed("purging the audit log", e))
                .len() as i64;
            after_seq = header.last_seq;
        }
        if blocks.iter().any(|(header, _, _)| header.last_seq > through_seq) {
            break;
        }
    }
    deleted
}

/// Checks 0.1.0's per-entry links after position `resume_after` (where the last purge left the
/// chain with `link`): returns how many were checked, the last position and link.
fn verify_entry_links(
    client: &mut SpiClient<'_>,
    printers: &mut Printers,
    resume_after: i64,
    mut link: Link,
) -> Result<(i64, i64, Link), Verdict> {
    let query = format!(
        "SELECT c.log_id, c.link, l.id IS NULL AS missing, c.seq, {CANONICAL_COLUMNS}
           FROM safeguard.audit_chain c LEFT JOIN safeguard.audit_log l ON l.id = c.log_id
          WHERE c.seq > $1
          ORDER BY c.seq"
    );
    let mut checked: i64 = 0;
    let mut seq = resume_after;
    let mut verdict: Option<Verdict> = None;
    let mut encoded = Vec::with_capacity(1024);
    for_each_row(
        client,
        &query,
        &[resume_after.into()],
        &mut (),
        |_, row| {
            let log_id = row.uuid(0);
            if row.boolean(2).unwrap_or(true) {
                verdict = Some((false, checked, log_id, "a sealed entry is missing: it was deleted".into()));
                return false;
            }
            printers.encode(&mut encoded, row, 4);
            link = next_link(&link, &encoded);
            if row.bytes(1) != Some(link.as_slice()) {
                verdict = Some((
                    false,
                    checked,
                    log_id,
                    "a sealed entry does not match its seal: it was modified (or its link was)".into(),
                ));
                return false;
            }
            seq = row.values[3].value() as i64;
            checked += 1;
            progress("verified", checked);
            true
        },
        |_, _| {},
    );
    match verdict {
        Some(verdict) => Err(verdict),
        None => Ok((checked, seq, link)),
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use super::*;
    use crate::test_support::one;

    /// A backlog larger than a pass (1,000 entries in this build) is sealed in several passes,
    /// the smallest keys first, into blocks of 300 that tile the range, and verifies.
    #[pg_test]
    fn a_large_backlog_is_sealed_in_passes_and_blocks() {
        Spi::run("CREATE TABLE backlog (id int PRIMARY KEY)").unwrap();
        Spi::run("SELECT safeguard.enable_audit('backlog')").unwrap();
        Spi::run("INSERT INTO backlog SELECT generate_series(1, 2500)").unwrap();
        // The test runs in one transaction: its own entries are not below the horizon yet.
        assert_eq!(one::<i64>("SELECT safeguard.audit_seal()"), 0);
        // Entries of finished transactions, written out of band as the triggers would: the
        // same rows with transaction numbers 10..14, in scrambled physical order.
        Spi::run(
            "INSERT INTO safeguard.audit_log (db_user, table_schema, table_name, operation, record_id, txid)
             SELECT current_user, 'public', 'backlog_past', 'INSERT', jsonb_build_object('id', n), 10 + (n * 7) % 5
               FROM generate_series(1, 2500) n",
        )
        .unwrap();
        assert_eq!(one::<i64>("SELECT safeguard.audit_seal()"), 2500);
        // Three passes (1,000 + 1,000 + 500 entries), each cut into blocks of at most 300.
        assert_eq!(one::<i64>("SELECT count(*) FROM safeguard.audit_chain_blocks"), 4 + 4 + 2);
        assert!(one::<bool>(
            "SELECT bool_and(b.after_txid IS NOT DISTINCT FROM p.through_txid AND b.after_id IS NOT DISTINCT FROM p.through_id)
               FROM safeguard.audit_chain_blocks b
               JOIN safeguard.audit_chain_blocks p ON p.last_seq = (SELECT max(q.last_seq) FROM safeguard.audit_chain_blocks q WHERE q.last_seq < b.last_seq)"
        ));
        assert_eq!(one::<i64>("SELECT max(last_seq) FROM safeguard.audit_chain_blocks"), 2500);
        assert_eq!(
            one::<String>("SELECT format('%s %s %s', ok, rows_checked, detail) FROM safeguard.audit_verify()"),
            "t 2500 2500 sealed entries verified"
        );
    }

    fn quoted(value: Option<&str>) -> String {
        let mut out = Vec::new();
        push_quoted(&mut out, value.map(str::as_bytes));
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn quotes_like_quote_nullable() {
        assert_eq!(quoted(None), "NULL");
        assert_eq!(quoted(Some("")), "''");
        assert_eq!(quoted(Some("it's")), "'it''s'");
        assert_eq!(quoted(Some(r"a\b")), r"E'a\\b'");
        assert_eq!(quoted(Some(r"x\'y")), r"E'x\\''y'");
        assert_eq!(quoted(Some("NULL")), "'NULL'");
        assert_eq!(quoted(Some("ünï ✓")), "'ünï ✓'");
    }

    #[test]
    fn uuids_and_epochs_print_like_postgresql() {
        let mut out = Vec::new();
        push_uuid(&mut out, &[0x0a, 0xbc, 0xde, 0xf0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0xff]);
        assert_eq!(out, b"0abcdef0-0102-0304-0506-0708090a0bff");
        let epoch = |t: i64| {
            let mut out = Vec::new();
            push_epoch(&mut out, t);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(epoch(0), "946684800.000000"); // 2000-01-01
        assert_eq!(epoch(-946_684_800_000_000), "0.000000"); // 1970-01-01
        assert_eq!(epoch(-946_684_800_500_000), "-0.500000");
        assert_eq!(epoch(-946_684_801_500_000), "-1.500000");
        assert_eq!(epoch(1), "946684800.000001");
        assert_eq!(epoch(i64::MAX), "Infinity");
        assert_eq!(epoch(i64::MIN), "-Infinity");
        let integer = |n: i128| {
            let mut out = Vec::new();
            push_integer(&mut out, n);
            String::from_utf8(out).unwrap()
        };
        for n in [0, 7, -7, 10, 1234567890, i64::MAX as i128, i64::MIN as i128] {
            assert_eq!(integer(n), n.to_string());
        }
    }

    #[test]
    fn links_chain() {
        let first = next_link(&[0; 32], b"x");
        let mut hasher = Sha256::new();
        hasher.update([0u8; 32]);
        hasher.update(b"x");
        assert_eq!(first.as_slice(), hasher.finalize().as_slice());
        assert_ne!(next_link(&first, b"x"), first);
    }
}
