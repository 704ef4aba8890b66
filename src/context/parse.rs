//! Reading context values back from settings: pure Rust, no PostgreSQL.
//!
//! Settings hold text. A context id is stored as the canonical lower-case uuid text that
//! `set_context` writes, but applications that set their own setting (the adoption path, for
//! example `set_config('app.current_tenant_id', ..., true)`) may write any of the spellings
//! PostgreSQL's uuid input accepts for a plain uuid: hyphenated, without hyphens, upper case, in
//! braces. '' is what PostgreSQL returns for a transaction-local setting after its transaction
//! ended: it means "no context", exactly like NULL.

/// A setting value that is not a uuid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedId;

/// `None` for an unset or empty setting; the 16 bytes of a uuid; or an error for anything else.
pub fn parse_context_id(value: Option<&[u8]>) -> Result<Option<[u8; 16]>, MalformedId> {
    let text = match value {
        None => return Ok(None),
        Some(text) => text,
    };
    if text.is_empty() {
        return Ok(None);
    }
    let inner = match text {
        [b'{', inner @ .., b'}'] => inner,
        _ => text,
    };
    // Hyphens are allowed only at the canonical positions, or not at all.
    let hex: Vec<u8> = match inner.len() {
        36 => {
            if [8, 13, 18, 23].iter().any(|&i| inner[i] != b'-') {
                return Err(MalformedId);
            }
            inner.iter().copied().filter(|&b| b != b'-').collect()
        }
        32 => inner.to_vec(),
        _ => return Err(MalformedId),
    };
    if hex.len() != 32 {
        return Err(MalformedId);
    }
    let mut bytes = [0u8; 16];
    for (i, pair) in hex.chunks_exact(2).enumerate() {
        bytes[i] = (hex_digit(pair[0])? << 4) | hex_digit(pair[1])?;
    }
    Ok(Some(bytes))
}

fn hex_digit(b: u8) -> Result<u8, MalformedId> {
    match b {
        b'0'..=b'9' => Ok(b - b'0'),
        b'a'..=b'f' => Ok(b - b'a' + 10),
        b'A'..=b'F' => Ok(b - b'A' + 10),
        _ => Err(MalformedId),
    }
}

/// The canonical text of a uuid (what PostgreSQL's uuid output prints), written into settings.
pub fn uuid_text(bytes: &[u8; 16]) -> [u8; 36] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = [b'-'; 36];
    let mut at = 0;
    for (i, byte) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            at += 1; // keep the hyphen
        }
        text[at] = HEX[usize::from(byte >> 4)];
        text[at + 1] = HEX[usize::from(byte & 0xF)];
        at += 2;
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ID: [u8; 16] = [
        0x01, 0x56, 0x3e, 0x3a, 0xb5, 0xd3, 0xd6, 0x76, 0x4c, 0x61, 0xef, 0xb9, 0x93, 0x02, 0xbd,
        0x5b,
    ];

    #[test]
    fn unset_and_empty_mean_no_context() {
        assert_eq!(parse_context_id(None), Ok(None));
        assert_eq!(parse_context_id(Some(b"")), Ok(None));
    }

    #[test]
    fn accepts_the_spellings_of_a_uuid() {
        for text in [
            "01563e3a-b5d3-d676-4c61-efb99302bd5b",
            "01563E3A-B5D3-D676-4C61-EFB99302BD5B",
            "01563e3ab5d3d6764c61efb99302bd5b",
            "{01563e3a-b5d3-d676-4c61-efb99302bd5b}",
        ] {
            assert_eq!(
                parse_context_id(Some(text.as_bytes())),
                Ok(Some(ID)),
                "{text}"
            );
        }
    }

    #[test]
    fn rejects_anything_else() {
        for text in [
            " ",
            "null",
            "01563e3a-b5d3-d676-4c61-efb99302bd5",
            "01563e3a-b5d3-d676-4c61-efb99302bd5bb",
            "01563e3ab-5d3-d676-4c61-efb99302bd5b",
            "01563e3a-b5d3-d676-4c61-efb99302bd5g",
            "{01563e3a-b5d3-d676-4c61-efb99302bd5b",
            "01563e3a-b5d3-d676-4c61-efb99302bd5b}",
            " 01563e3a-b5d3-d676-4c61-efb99302bd5b",
            "01563e3a-b5d3-d676-4c61-efb99302bd5b'; DROP TABLE x; --",
        ] {
            assert_eq!(
                parse_context_id(Some(text.as_bytes())),
                Err(MalformedId),
                "{text}"
            );
        }
    }

    #[test]
    fn canonical_text() {
        assert_eq!(&uuid_text(&ID), b"01563e3a-b5d3-d676-4c61-efb99302bd5b");
    }

    proptest! {
        #[test]
        fn text_round_trips(bytes: [u8; 16]) {
            prop_assert_eq!(parse_context_id(Some(&uuid_text(&bytes))), Ok(Some(bytes)));
        }

        #[test]
        fn arbitrary_text_never_panics(text in proptest::collection::vec(any::<u8>(), 0..60)) {
            let _ = parse_context_id(Some(&text));
        }
    }
}
