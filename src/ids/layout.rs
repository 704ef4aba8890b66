//! Bit layout of our IDs: 128 bits that are at once a ULID and an RFC 9562 UUIDv7.
//!
//! ```text
//!  bits 127..80  unix_ts_ms   48 bits, big-endian milliseconds since 1970-01-01 UTC
//!  bits  79..76  version      0b0111 (7)
//!  bits  75..64  rand_a       12 random bits
//!  bits  63..62  variant      0b10 (RFC 9562)
//!  bits  61..0   rand_b       62 random bits
//! ```
//! The 74 random bits (`rand_a` then `rand_b`) are handled here as one 74-bit number so the
//! generator can increment it across the version and variant fields, which stay fixed.
//! A `u128` holds the ID with byte 0 (the first byte on disk and on the wire) as its most
//! significant byte, so integer order is byte order is uuid order is ULID text order.

/// Largest millisecond a 48-bit timestamp holds: 10889-08-02 05:31:50.655 UTC.
pub const MAX_UNIX_MS: u64 = (1 << 48) - 1;
/// Random bits per ID.
pub const RANDOM_BITS: u32 = 74;
/// Exclusive upper bound of the 74-bit random field.
pub const RANDOM_LIMIT: u128 = 1 << RANDOM_BITS;

const RAND_B_BITS: u32 = 62;
const RAND_B_MASK: u128 = (1 << RAND_B_BITS) - 1;
const RAND_A_MASK: u128 = 0xFFF;
const VERSION_7: u128 = 0x7 << 76;
const VARIANT_RFC: u128 = 0b10 << 62;
/// Everything below the timestamp.
const BELOW_TIMESTAMP: u128 = (1 << 80) - 1;

/// PostgreSQL timestamps count microseconds from 2000-01-01; Unix time from 1970-01-01.
const PG_EPOCH_UNIX_MICROS: i64 = 946_684_800_000_000;

/// The timestamp an ID carries, in Unix milliseconds. Defined for any 128-bit value (any ULID).
#[inline]
pub fn unix_ms(id: u128) -> u64 {
    (id >> 80) as u64
}

/// A UUIDv7/ULID from a timestamp and 74 random bits. `unix_ms` must be ≤ [`MAX_UNIX_MS`] and
/// `random` < [`RANDOM_LIMIT`]; callers guarantee both (debug builds check).
#[inline]
pub fn pack_v7(unix_ms: u64, random: u128) -> u128 {
    debug_assert!(unix_ms <= MAX_UNIX_MS && random < RANDOM_LIMIT);
    let rand_a = (random >> RAND_B_BITS) & RAND_A_MASK;
    let rand_b = random & RAND_B_MASK;
    ((unix_ms as u128) << 80) | VERSION_7 | (rand_a << 64) | VARIANT_RFC | rand_b
}

/// The 74 random bits of an ID built by [`pack_v7`].
#[inline]
pub fn random_field(id: u128) -> u128 {
    (((id >> 64) & RAND_A_MASK) << RAND_B_BITS) | (id & RAND_B_MASK)
}

/// True when the version nibble is 7 and the variant bits are RFC 9562's `10`.
pub fn is_uuid_v7(id: u128) -> bool {
    (id >> 76) & 0xF == 7 && (id >> 62) & 0b11 == 0b10
}

/// The smallest 128-bit value with this timestamp: the lower bound for range scans. It is below
/// every ID of that millisecond, ours (UUIDv7) or any other ULID library's.
pub fn first_of_ms(unix_ms: u64) -> u128 {
    (unix_ms as u128) << 80
}

/// The largest 128-bit value with this timestamp.
pub fn last_of_ms(unix_ms: u64) -> u128 {
    first_of_ms(unix_ms) | BELOW_TIMESTAMP
}

/// A PostgreSQL `timestamptz` (microseconds since 2000-01-01 UTC) outside what 48-bit Unix
/// milliseconds can hold: before 1970, after 10889-08-02, or ±infinity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampOutOfRange;

/// `timestamptz` → Unix milliseconds, rounding down to the millisecond that contains it.
pub fn unix_ms_from_pg_timestamp(pg_micros: i64) -> Result<u64, TimestampOutOfRange> {
    let unix_micros = pg_micros
        .checked_add(PG_EPOCH_UNIX_MICROS)
        .ok_or(TimestampOutOfRange)?;
    if unix_micros < 0 {
        return Err(TimestampOutOfRange);
    }
    let ms = (unix_micros / 1000) as u64;
    if ms > MAX_UNIX_MS {
        return Err(TimestampOutOfRange);
    }
    Ok(ms)
}

/// Unix milliseconds (any 48-bit value) → PostgreSQL `timestamptz` microseconds. Always in range:
/// PostgreSQL's timestamps reach the year 294276.
pub fn pg_timestamp_from_unix_ms(unix_ms: u64) -> i64 {
    debug_assert!(unix_ms <= MAX_UNIX_MS);
    unix_ms as i64 * 1000 - PG_EPOCH_UNIX_MICROS
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn layout_sets_version_and_variant() {
        let id = pack_v7(0x0123_4567_89AB, RANDOM_LIMIT - 1);
        assert_eq!(id, 0x0123_4567_89AB_7FFF_BFFF_FFFF_FFFF_FFFFu128);
        assert!(is_uuid_v7(id));
        let id = pack_v7(0, 0);
        assert_eq!(id, 0x0000_0000_0000_7000_8000_0000_0000_0000u128);
    }

    #[test]
    fn millisecond_bounds_cover_every_value_of_that_millisecond() {
        assert_eq!(first_of_ms(1), 1u128 << 80);
        assert_eq!(last_of_ms(1), (2u128 << 80) - 1);
        assert_eq!(unix_ms(last_of_ms(MAX_UNIX_MS)), MAX_UNIX_MS);
    }

    #[test]
    fn timestamp_conversion_edges() {
        // 2000-01-01 00:00:00 UTC is PostgreSQL's zero.
        assert_eq!(unix_ms_from_pg_timestamp(0), Ok(946_684_800_000));
        // 1970-01-01 00:00:00 UTC is the first representable instant.
        assert_eq!(unix_ms_from_pg_timestamp(-PG_EPOCH_UNIX_MICROS), Ok(0));
        assert_eq!(
            unix_ms_from_pg_timestamp(-PG_EPOCH_UNIX_MICROS - 1),
            Err(TimestampOutOfRange)
        );
        // Microseconds round down to their millisecond.
        assert_eq!(
            unix_ms_from_pg_timestamp(-PG_EPOCH_UNIX_MICROS + 1999),
            Ok(1)
        );
        // Infinity is i64::MAX, -infinity i64::MIN in PostgreSQL.
        assert_eq!(
            unix_ms_from_pg_timestamp(i64::MAX),
            Err(TimestampOutOfRange)
        );
        assert_eq!(
            unix_ms_from_pg_timestamp(i64::MIN),
            Err(TimestampOutOfRange)
        );
        let last = pg_timestamp_from_unix_ms(MAX_UNIX_MS);
        assert_eq!(unix_ms_from_pg_timestamp(last + 999), Ok(MAX_UNIX_MS));
        assert_eq!(
            unix_ms_from_pg_timestamp(last + 1000),
            Err(TimestampOutOfRange)
        );
    }

    proptest! {
        #[test]
        fn pack_then_unpack(ms in 0..=MAX_UNIX_MS, random in 0..RANDOM_LIMIT) {
            let id = pack_v7(ms, random);
            prop_assert!(is_uuid_v7(id));
            prop_assert_eq!(unix_ms(id), ms);
            prop_assert_eq!(random_field(id), random);
            prop_assert!(first_of_ms(ms) <= id && id <= last_of_ms(ms));
        }

        #[test]
        fn packing_preserves_order(ms in 0..=MAX_UNIX_MS, a in 0..RANDOM_LIMIT, b in 0..RANDOM_LIMIT) {
            prop_assert_eq!(a.cmp(&b), pack_v7(ms, a).cmp(&pack_v7(ms, b)));
        }

        #[test]
        fn milliseconds_round_trip_through_timestamps(ms in 0..=MAX_UNIX_MS, micros in 0i64..1000) {
            prop_assert_eq!(unix_ms_from_pg_timestamp(pg_timestamp_from_unix_ms(ms) + micros), Ok(ms));
        }
    }
}
