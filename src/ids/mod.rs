//! Time-ordered IDs: ULIDs that are valid UUIDv7 values (layout in `layout.rs`).
//!
//! SQL surface: `ulid()`, `ulid_at()`, `ulid_min()`, `ulid_max()`, `ulid_time()`, `ulid_encode()`,
//! `ulid_decode()` over `uuid`, defined here; the 16-byte type `safeguard.ulid` with its
//! operators, operator classes, casts and `gen_ulid()` is hand-written in `sql/ulid_type.sql`.
//! That file reuses the C symbols of the functions below (pgrx names them `<fn>_wrapper`): a
//! `ulid` and a `uuid` are the same 16 bytes, so one Rust function serves both types.
//!
//! Each backend has its own generator, seeded once from the OS; nothing is shared between
//! processes, so no `shared_preload_libraries` and no lock. IDs are strictly increasing within
//! a backend (see `generator.rs`); across backends they are ordered by millisecond.

mod generator;
pub mod layout;
pub mod text;

use crate::error::{OrReport, SafeguardError};
use generator::{ClockOutOfRange, MonotonicGenerator};
use layout::TimestampOutOfRange;
use pgrx::prelude::*;
use pgrx::{PgSqlErrorCode, Uuid};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use std::cell::RefCell;
use std::ffi::{CStr, CString};
use text::TextError;

extension_sql_file!("../../sql/ulid_type.sql", name = "ulid_type");

const TIME_RANGE_DETAIL: &str = "ULID timestamps are milliseconds since 1970-01-01 00:00:00 UTC \
     in 48 bits: from 1970-01-01 to 10889-08-02 05:31:50.655 UTC.";

impl From<TextError> for SafeguardError {
    fn from(error: TextError) -> Self {
        SafeguardError::new(
            PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION,
            "invalid input syntax for type ulid",
        )
        .with_detail(error.detail())
        .with_hint("A ULID is written as 26 characters such as 01ARZ3NDEKTSV4RRFFQ69G5FAV.")
    }
}

impl From<TimestampOutOfRange> for SafeguardError {
    fn from(_: TimestampOutOfRange) -> Self {
        SafeguardError::new(
            PgSqlErrorCode::ERRCODE_DATETIME_FIELD_OVERFLOW,
            "timestamp out of range for type ulid",
        )
        .with_detail(TIME_RANGE_DETAIL)
    }
}

impl From<ClockOutOfRange> for SafeguardError {
    fn from(_: ClockOutOfRange) -> Self {
        SafeguardError::new(
            PgSqlErrorCode::ERRCODE_DATETIME_FIELD_OVERFLOW,
            "system clock out of range for type ulid",
        )
        .with_detail(TIME_RANGE_DETAIL)
        .with_hint("Check the database server's clock.")
    }
}

struct BackendGenerator {
    /// The process that seeded it. Should this library ever be loaded before a fork (preloaded
    /// into the postmaster), a child sees another pid and reseeds instead of sharing a stream.
    pid: i32,
    generator: MonotonicGenerator<ChaCha20Rng>,
}

thread_local! {
    // A backend is one thread; the generator lives as long as the backend.
    static BACKEND_GENERATOR: RefCell<Option<BackendGenerator>> = const { RefCell::new(None) };
}

pub(crate) fn seeded_rng() -> ChaCha20Rng {
    let mut seed = [0u8; 32];
    if getrandom::fill(&mut seed).is_err() {
        SafeguardError::new(
            PgSqlErrorCode::ERRCODE_SYSTEM_ERROR,
            "could not seed the ulid generator from the operating system's random source",
        )
        .report()
    }
    ChaCha20Rng::from_seed(seed)
}

#[inline]
fn with_generator<T>(f: impl FnOnce(&mut MonotonicGenerator<ChaCha20Rng>) -> T) -> T {
    // SAFETY: MyProcPid is set once at process start and only read afterwards.
    let pid = unsafe { pg_sys::MyProcPid };
    BACKEND_GENERATOR.with_borrow_mut(|slot| {
        if slot.as_ref().is_none_or(|state| state.pid != pid) {
            *slot = Some(BackendGenerator {
                pid,
                generator: MonotonicGenerator::new(seeded_rng()),
            });
        }
        let state = slot.as_mut().expect("generator was just initialised");
        f(&mut state.generator)
    })
}

#[inline]
fn now_unix_ms() -> Result<u64, ClockOutOfRange> {
    // clock_gettime(CLOCK_REALTIME) is answered by the vDSO without a system call. Called
    // directly: std's SystemTime adds checked Duration arithmetic that showed up in profiles
    // of ulid() at a quarter of the clock's own cost.
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec.
    if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut now) } != 0 || now.tv_sec < 0 {
        return Err(ClockOutOfRange);
    }
    Ok(now.tv_sec as u64 * 1000 + now.tv_nsec as u64 / 1_000_000)
}

#[inline]
fn to_uuid(id: u128) -> Uuid {
    Uuid::from_bytes(id.to_be_bytes())
}

#[inline]
fn from_uuid(id: &Uuid) -> u128 {
    u128::from_be_bytes(*id.as_bytes())
}

fn pg_timestamp_to_unix_ms(ts: TimestampWithTimeZone) -> u64 {
    layout::unix_ms_from_pg_timestamp(ts.into_inner()).or_report()
}

/// A new time-ordered ID: a ULID that is a valid UUIDv7. `DEFAULT safeguard.ulid()`.
#[pg_extern(volatile, parallel_safe)]
fn ulid() -> Uuid {
    let now = now_unix_ms().or_report();
    to_uuid(with_generator(|g| g.next_id(now)).or_report())
}

/// A new ID from this backend's generator, for rows written without SQL (the audit log's own
/// ids: what its `DEFAULT safeguard.ulid()` would give).
pub(crate) fn new_id() -> Uuid {
    ulid()
}

/// A new random ID carrying the given time, outside this backend's monotonic sequence (backfills).
#[pg_extern(volatile, strict, parallel_safe)]
fn ulid_at(ts: TimestampWithTimeZone) -> Uuid {
    let ms = pg_timestamp_to_unix_ms(ts);
    to_uuid(with_generator(|g| g.random_id_at(ms)).or_report())
}

/// The smallest 128-bit value of the millisecond containing `ts`: `id >= ulid_min(a)` starts a range.
#[pg_extern(immutable, strict, parallel_safe)]
fn ulid_min(ts: TimestampWithTimeZone) -> Uuid {
    to_uuid(layout::first_of_ms(pg_timestamp_to_unix_ms(ts)))
}

/// The largest 128-bit value of the millisecond containing `ts`.
#[pg_extern(immutable, strict, parallel_safe)]
fn ulid_max(ts: TimestampWithTimeZone) -> Uuid {
    to_uuid(layout::last_of_ms(pg_timestamp_to_unix_ms(ts)))
}

/// The time an ID carries (its first 48 bits), for any ULID or UUIDv7.
#[pg_extern(immutable, strict, parallel_safe)]
fn ulid_time(id: Uuid) -> TimestampWithTimeZone {
    let micros = layout::pg_timestamp_from_unix_ms(layout::unix_ms(from_uuid(&id)));
    TimestampWithTimeZone::try_from(micros)
        .map_err(|_| TimestampOutOfRange)
        .or_report()
}

/// The canonical 26-character ULID text of any uuid.
#[pg_extern(immutable, strict, parallel_safe)]
fn ulid_encode(id: Uuid) -> String {
    let text = text::encode(from_uuid(&id));
    // Crockford base32 is ASCII.
    String::from_utf8_lossy(&text).into_owned()
}

/// The uuid of a ULID text, case-insensitive.
#[pg_extern(immutable, strict, parallel_safe)]
fn ulid_decode(text: &str) -> Uuid {
    to_uuid(text::decode(text.as_bytes()).or_report())
}

/// Input function of type `safeguard.ulid` (declared in sql/ulid_type.sql).
#[pg_extern(sql = false)]
fn ulid_in(input: &CStr) -> Uuid {
    to_uuid(text::decode(input.to_bytes()).or_report())
}

/// Output function of type `safeguard.ulid` (declared in sql/ulid_type.sql).
#[pg_extern(sql = false)]
fn ulid_out(id: Uuid) -> CString {
    CString::new(text::encode(from_uuid(&id))).expect("Crockford base32 has no NUL byte")
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    use crate::test_support::one;

    #[pg_test]
    fn ulid_is_uuid_v7_and_increasing() {
        assert!(one::<bool>(
            "SELECT bool_and(substr(id::text, 15, 1) = '7' AND substr(id::text, 20, 1) IN ('8','9','a','b'))
               FROM (SELECT safeguard.ulid() AS id FROM generate_series(1, 1000)) s"
        ));
        assert!(one::<bool>(
            "SELECT bool_and(id > prev) FROM (
               SELECT id, lag(id) OVER (ORDER BY n) AS prev
                 FROM (SELECT n, safeguard.ulid() AS id FROM generate_series(1, 100000) n) g) w
              WHERE prev IS NOT NULL"
        ));
    }

    #[pg_test]
    fn ulid_carries_the_current_time() {
        assert!(one::<bool>(
            "SELECT safeguard.ulid_time(safeguard.ulid())
                    BETWEEN clock_timestamp() - interval '1 second' AND clock_timestamp()"
        ));
    }

    #[pg_test]
    fn ulid_at_and_bounds() {
        assert!(one::<bool>(
            "WITH t(ts) AS (VALUES ('2026-01-01 12:34:56.789123+00'::timestamptz))
             SELECT safeguard.ulid_time(safeguard.ulid_at(ts)) = '2026-01-01 12:34:56.789+00'
                AND safeguard.ulid_at(ts) BETWEEN safeguard.ulid_min(ts) AND safeguard.ulid_max(ts)
                AND safeguard.ulid_at(ts) <> safeguard.ulid_at(ts)
               FROM t"
        ));
        assert_eq!(
            one::<String>("SELECT safeguard.ulid_min('2016-07-30 23:54:10.259+00')::text"),
            "01563e3a-b5d3-0000-0000-000000000000"
        );
        assert_eq!(
            one::<String>("SELECT safeguard.ulid_max('2016-07-30 23:54:10.259+00')::text"),
            "01563e3a-b5d3-ffff-ffff-ffffffffffff"
        );
    }

    #[pg_test]
    fn encode_decode_match_the_ulid_specification_example() {
        assert_eq!(
            one::<String>("SELECT safeguard.ulid_decode('01arz3ndektsv4rrffq69g5fav')::text"),
            "01563e3a-b5d3-d676-4c61-efb99302bd5b"
        );
        assert_eq!(
            one::<String>("SELECT safeguard.ulid_encode('01563e3a-b5d3-d676-4c61-efb99302bd5b')"),
            "01ARZ3NDEKTSV4RRFFQ69G5FAV"
        );
    }

    #[pg_test]
    fn volatility_and_parallel_safety_are_declared() {
        let rows = "SELECT string_agg(p.proname || ':' || p.provolatile::text || p.proparallel::text
                              || CASE WHEN p.proisstrict THEN 's' ELSE '' END, ' ' ORDER BY p.proname)
                      FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                     WHERE n.nspname = 'safeguard' AND p.proname IN
                       ('ulid', 'ulid_at', 'ulid_min', 'ulid_max', 'ulid_time', 'ulid_encode',
                        'ulid_decode', 'gen_ulid')";
        assert_eq!(
            one::<String>(rows),
            "gen_ulid:vss ulid:vss ulid_at:vss ulid_decode:iss ulid_encode:iss ulid_max:iss \
             ulid_min:iss ulid_time:iss"
        );
    }

    #[pg_test(error = "invalid input syntax for type ulid")]
    fn malformed_text_is_rejected() {
        Spi::run("SELECT safeguard.ulid_decode('01ARZ3NDEKTSV4RRFFQ69G5FA')").unwrap();
    }

    #[pg_test(error = "timestamp out of range for type ulid")]
    fn timestamps_before_1970_are_rejected() {
        Spi::run("SELECT safeguard.ulid_min('1969-12-31 23:59:59.999+00')").unwrap();
    }

    #[pg_test]
    fn ulid_type_is_16_bytes_and_orders_like_uuid_and_text() {
        // The operators live in schema safeguard, which users put on their search_path.
        Spi::run("SET LOCAL search_path = public, safeguard").unwrap();
        assert_eq!(
            one::<i32>("SELECT pg_column_size(safeguard.gen_ulid())"),
            16
        );
        assert!(one::<bool>(
            "SELECT bool_and((a < b) = (a::uuid < b::uuid) AND (a < b) = (a::text < b::text)
                         AND (a = b) = (a::uuid = b::uuid))
               FROM (SELECT safeguard.ulid_at(now() - random() * interval '1 day')::safeguard.ulid AS a,
                            safeguard.ulid_at(now() - random() * interval '1 day')::safeguard.ulid AS b
                       FROM generate_series(1, 2000)) s"
        ));
    }
}
