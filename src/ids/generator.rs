//! The monotonic ID generator of one backend: pure logic, fed the clock by its caller.
//!
//! RFC 9562 §6.2 "monotonic random" (method 2): a new millisecond gets 74 fresh random bits; a
//! further ID in the same millisecond, or after the clock stepped backwards, adds a random
//! increment of 1..=2^32 to the previous ID's random field, so successive IDs are strictly
//! increasing yet not guessable from each other. The space left above a fresh random field is
//! 2^73 on average: at 2^32 per ID it cannot run out within a millisecond in practice, and if it
//! ever did, the generator moves on to the next millisecond rather than fail or repeat.
//! A clock that steps back keeps the last timestamp until real time passes it again.

use super::layout::{pack_v7, random_field, unix_ms, MAX_UNIX_MS, RANDOM_LIMIT};
use rand_core::RngCore;

/// The clock is beyond 10889-08-02, the last millisecond 48 bits hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockOutOfRange;

pub struct MonotonicGenerator<R> {
    rng: R,
    /// The last ID handed out; 0 before the first.
    last: u128,
}

impl<R: RngCore> MonotonicGenerator<R> {
    pub fn new(rng: R) -> Self {
        Self { rng, last: 0 }
    }

    /// The next ID at `now_ms` (Unix milliseconds): strictly greater than every earlier one.
    #[inline]
    pub fn next_id(&mut self, now_ms: u64) -> Result<u128, ClockOutOfRange> {
        let last_ms = unix_ms(self.last);
        let id = if now_ms > last_ms || self.last == 0 {
            self.fresh(now_ms)?
        } else {
            let increment = u128::from(self.rng.next_u32()) + 1;
            let random = random_field(self.last) + increment;
            if random < RANDOM_LIMIT {
                pack_v7(last_ms, random)
            } else {
                self.fresh(last_ms + 1)?
            }
        };
        self.last = id;
        Ok(id)
    }

    /// A random ID at `at_ms`, outside the monotonic sequence (for backfills).
    pub fn random_id_at(&mut self, at_ms: u64) -> Result<u128, ClockOutOfRange> {
        self.fresh(at_ms)
    }

    #[inline]
    fn fresh(&mut self, ms: u64) -> Result<u128, ClockOutOfRange> {
        if ms > MAX_UNIX_MS {
            return Err(ClockOutOfRange);
        }
        Ok(pack_v7(ms, self.random74()))
    }

    #[inline]
    fn random74(&mut self) -> u128 {
        let high = u128::from(self.rng.next_u64());
        let low = u128::from(self.rng.next_u32() & 0x3FF);
        (high << 10) | low
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::layout::{is_uuid_v7, RANDOM_BITS};
    use proptest::prelude::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::{RngCore, SeedableRng};

    fn generator(seed: u64) -> MonotonicGenerator<ChaCha20Rng> {
        MonotonicGenerator::new(ChaCha20Rng::seed_from_u64(seed))
    }

    /// An RNG that always returns all ones: the largest random fields and increments.
    struct Saturated;
    impl RngCore for Saturated {
        fn next_u32(&mut self) -> u32 {
            u32::MAX
        }
        fn next_u64(&mut self) -> u64 {
            u64::MAX
        }
        fn fill_bytes(&mut self, dest: &mut [u8]) {
            dest.fill(0xFF)
        }
    }

    #[test]
    fn same_millisecond_is_strictly_increasing() {
        let mut g = generator(1);
        let ids: Vec<u128> = (0..10_000)
            .map(|_| g.next_id(1_700_000_000_000).unwrap())
            .collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert!(ids
            .iter()
            .all(|&id| unix_ms(id) == 1_700_000_000_000 && is_uuid_v7(id)));
    }

    #[test]
    fn clock_stepping_back_keeps_the_last_timestamp() {
        let mut g = generator(2);
        let a = g.next_id(5_000).unwrap();
        let b = g.next_id(4_000).unwrap();
        assert!(b > a);
        assert_eq!(unix_ms(b), 5_000);
        let c = g.next_id(5_001).unwrap();
        assert!(c > b);
        assert_eq!(unix_ms(c), 5_001);
    }

    #[test]
    fn exhausted_random_field_moves_to_the_next_millisecond() {
        let mut g = MonotonicGenerator::new(Saturated);
        let first = g.next_id(7).unwrap();
        assert_eq!(random_field(first), RANDOM_LIMIT - 1);
        let second = g.next_id(7).unwrap();
        assert!(second > first);
        assert_eq!(unix_ms(second), 8);
        assert!(is_uuid_v7(second));
    }

    #[test]
    fn clock_beyond_48_bits_is_an_error() {
        let mut g = generator(3);
        assert_eq!(g.next_id(MAX_UNIX_MS + 1), Err(ClockOutOfRange));
        assert_eq!(g.random_id_at(MAX_UNIX_MS + 1), Err(ClockOutOfRange));
        assert!(g.next_id(MAX_UNIX_MS).is_ok());
        // The last millisecond, once its random field is used up, has no successor.
        let mut s = MonotonicGenerator::new(Saturated);
        s.next_id(MAX_UNIX_MS).unwrap();
        assert_eq!(s.next_id(MAX_UNIX_MS), Err(ClockOutOfRange));
    }

    #[test]
    fn random_bits_are_all_used() {
        // Every one of the 74 random bit positions takes both values over a few hundred IDs.
        let mut g = generator(4);
        let (mut ones, mut zeros) = (0u128, 0u128);
        for ms in 1..=500 {
            let r = random_field(g.random_id_at(ms).unwrap());
            ones |= r;
            zeros |= !r & (RANDOM_LIMIT - 1);
        }
        assert_eq!(ones, (1u128 << RANDOM_BITS) - 1);
        assert_eq!(zeros, (1u128 << RANDOM_BITS) - 1);
    }

    proptest! {
        #[test]
        fn any_clock_sequence_gives_increasing_v7_ids(
            seed: u64,
            start in 0..=MAX_UNIX_MS / 2,
            steps in proptest::collection::vec(-5i64..5, 1..300),
        ) {
            let mut g = generator(seed);
            let mut now = start;
            let mut previous = 0u128;
            let mut newest_clock = 0;
            for step in steps {
                now = now.saturating_add_signed(step);
                newest_clock = newest_clock.max(now);
                let id = g.next_id(now).unwrap();
                prop_assert!(id > previous);
                prop_assert!(is_uuid_v7(id));
                // Never behind the clock's newest reading; ahead only by a borrowed millisecond.
                prop_assert!(unix_ms(id) >= newest_clock && unix_ms(id) <= newest_clock + 1);
                previous = id;
            }
        }
    }
}
