//! The canonical ULID text: 26 characters of Crockford base32, upper case on output, either case
//! on input. Encoding and decoding are the `ulid` crate's, so our text is every ULID library's
//! text; this module adds the checks that crate leaves to its callers (it silently drops the top
//! bits of a first character above 7) and errors that say what is wrong without echoing input.

pub use ulid::ULID_LEN as TEXT_LEN;

/// Why a text is not a ULID. Positions are 1-based, as a person counts characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextError {
    /// Not 26 bytes long.
    Length { found: usize },
    /// A character outside Crockford base32 (0-9, A-Z without I, L, O, U; either case).
    Character { position: usize },
    /// The first character is above 7: the value would need more than 128 bits.
    Overflow,
}

impl TextError {
    pub fn detail(&self) -> String {
        match self {
            TextError::Length { found } => {
                format!("A ULID is {TEXT_LEN} characters long; the input has {found} bytes.")
            }
            TextError::Character { position } => format!(
                "Character {position} is not Crockford base32 \
                 (0-9 and A-Z without I, L, O and U, in either case)."
            ),
            TextError::Overflow => {
                "The first character must be 0 to 7: larger values do not fit in 128 bits."
                    .to_string()
            }
        }
    }
}

/// The 26-character upper-case text of any 128-bit value.
#[inline]
pub fn encode(id: u128) -> [u8; TEXT_LEN] {
    let mut text = [0u8; TEXT_LEN];
    ulid::Ulid(id).array_to_str(&mut text);
    text
}

/// The 128-bit value of a ULID text, case-insensitive.
pub fn decode(text: &[u8]) -> Result<u128, TextError> {
    if text.len() != TEXT_LEN {
        return Err(TextError::Length { found: text.len() });
    }
    let value = std::str::from_utf8(text)
        .ok()
        .and_then(|s| ulid::Ulid::from_string(s).ok())
        .map(|ulid| ulid.0)
        .ok_or_else(|| first_invalid_character(text))?;
    // Every valid character is 0..=31, and the digits 0..=7 are exactly the characters '0'..='7'.
    if !(b'0'..=b'7').contains(&text[0]) {
        return Err(TextError::Overflow);
    }
    Ok(value)
}

/// Only on the error path: where the first character outside the alphabet is.
fn first_invalid_character(text: &[u8]) -> TextError {
    let is_crockford = |b: u8| {
        let upper = b.to_ascii_uppercase();
        upper.is_ascii_digit()
            || (upper.is_ascii_uppercase() && !matches!(upper, b'I' | b'L' | b'O' | b'U'))
    };
    let position = text.iter().position(|&b| !is_crockford(b)).unwrap_or(0) + 1;
    TextError::Character { position }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_values() {
        // The example of the ULID specification: 1469922850259 ms = 2016-07-30 23:54:10.259 UTC.
        let id = decode(b"01ARZ3NDEKTSV4RRFFQ69G5FAV").unwrap();
        assert_eq!(crate::ids::layout::unix_ms(id), 1_469_922_850_259);
        assert_eq!(&encode(id), b"01ARZ3NDEKTSV4RRFFQ69G5FAV");
        assert_eq!(decode(b"01arz3ndektsv4rrffq69g5fav"), Ok(id));
        assert_eq!(&encode(0), b"00000000000000000000000000");
        assert_eq!(&encode(u128::MAX), b"7ZZZZZZZZZZZZZZZZZZZZZZZZZ");
        assert_eq!(decode(b"7ZZZZZZZZZZZZZZZZZZZZZZZZZ"), Ok(u128::MAX));
    }

    #[test]
    fn rejects_bad_text() {
        assert_eq!(decode(b""), Err(TextError::Length { found: 0 }));
        assert_eq!(
            decode(b"01ARZ3NDEKTSV4RRFFQ69G5FA"),
            Err(TextError::Length { found: 25 })
        );
        assert_eq!(
            decode(b"01ARZ3NDEKTSV4RRFFQ69G5FAVV"),
            Err(TextError::Length { found: 27 })
        );
        assert_eq!(
            decode(b"01ARZ3NDEKTSV4RRFFQ69G5FAU"),
            Err(TextError::Character { position: 26 })
        );
        assert_eq!(
            decode(b"I1ARZ3NDEKTSV4RRFFQ69G5FAV"),
            Err(TextError::Character { position: 1 })
        );
        assert_eq!(
            decode(b"01ARZ-NDEKTSV4RRFFQ69G5FAV"),
            Err(TextError::Character { position: 6 })
        );
        assert_eq!(
            decode(b"01ARZ NDEKTSV4RRFFQ69G5FAV"),
            Err(TextError::Character { position: 6 })
        );
        // Non-ASCII: 'é' is two bytes, so 25 characters make 26 bytes.
        assert_eq!(
            decode("01ARZ3NDEKTSV4RRFFQ69G5Fé".as_bytes()),
            Err(TextError::Character { position: 25 })
        );
        assert_eq!(
            decode(b"81ARZ3NDEKTSV4RRFFQ69G5FAV"),
            Err(TextError::Overflow)
        );
        assert_eq!(
            decode(b"ZZZZZZZZZZZZZZZZZZZZZZZZZZ"),
            Err(TextError::Overflow)
        );
    }

    #[test]
    fn details_never_contain_the_input() {
        let secret = b"SECRETSECRETSECRETSECRET!!";
        let detail = decode(secret).unwrap_err().detail();
        assert!(!detail.contains("SECRET"), "{detail}");
    }

    proptest! {
        #[test]
        fn every_value_round_trips(id: u128) {
            let text = encode(id);
            prop_assert_eq!(decode(&text), Ok(id));
            prop_assert_eq!(decode(text.to_ascii_lowercase().as_slice()), Ok(id));
        }

        #[test]
        fn text_order_is_value_order(a: u128, b: u128) {
            prop_assert_eq!(a.cmp(&b), encode(a).cmp(&encode(b)));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = decode(&bytes);
        }
    }
}
