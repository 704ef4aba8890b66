//! Validators for clinical identifiers and contact data, pure Rust. Each takes the raw bytes of a
//! text value and never panics, whatever they hold.

/// Luhn check over ASCII digits: true when the sum with every second digit from the right
/// doubled is a multiple of 10.
fn luhn_valid(digits: impl DoubleEndedIterator<Item = u8>) -> bool {
    let sum: u32 = digits
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = u32::from(d - b'0');
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    sum % 10 == 0
}

/// US National Provider Identifier: 10 digits, the first 1 or 2, and the last a Luhn check digit
/// computed with the prefix 80840 (the ISO card-issuer prefix for US health applications).
pub fn is_valid_npi(value: &[u8]) -> bool {
    value.len() == 10
        && value.iter().all(u8::is_ascii_digit)
        && matches!(value[0], b'1' | b'2')
        && luhn_valid(b"80840".iter().chain(value.iter()).copied())
}

/// DEA registration number: an upper-case letter (the registrant type), an upper-case letter
/// (the initial of the registrant's last name) or the digit 9 (registrants registered under a
/// business name and address), seven digits, and (d1 + d3 + d5) + 2 × (d2 + d4 + d6) ≡ d7
/// (mod 10). The checksum is the same for both forms.
pub fn is_valid_dea(value: &[u8]) -> bool {
    if value.len() != 9
        || !value[0].is_ascii_uppercase()
        || !(value[1].is_ascii_uppercase() || value[1] == b'9')
        || !value[2..].iter().all(u8::is_ascii_digit)
    {
        return false;
    }
    let d = |i: usize| u32::from(value[2 + i] - b'0');
    ((d(0) + d(2) + d(4)) + 2 * (d(1) + d(3) + d(5))) % 10 == d(6)
}

/// E.164 telephone number: '+', then 8 to 15 digits, the first not 0.
pub fn is_valid_e164(value: &[u8]) -> bool {
    let Some(digits) = value.strip_prefix(b"+") else { return false };
    (8..=15).contains(&digits.len()) && digits.iter().all(u8::is_ascii_digit) && digits[0] != b'0'
}

/// A pragmatic e-mail address check: one '@'; a local part of 1 to 64 bytes without spaces,
/// control characters or the specials ()<>[]\,;:" and without a leading, trailing or doubled
/// dot; a domain of at most 253 bytes with at least two dot-separated labels of 1 to 63 bytes
/// each, made of letters, digits, hyphens (not at either end of a label) or non-ASCII
/// (internationalised) bytes, the last not all digits; at most 254 bytes in all (RFC 5321).
///
/// One pass over the bytes with lookup tables and no allocation: this runs in CHECK constraints,
/// once per row written.
pub fn is_valid_email(value: &[u8]) -> bool {
    if value.len() > 254 {
        return false;
    }
    let Some(at) = value.iter().position(|&b| b == b'@') else { return false };
    let (local, domain) = (&value[..at], &value[at + 1..]);
    if local.is_empty() || local.len() > 64 || domain.len() > 253 {
        return false;
    }
    let mut previous = b'.'; // a leading dot counts as doubled
    for &b in local {
        if !LOCAL_BYTE[usize::from(b)] || (b == b'.' && previous == b'.') {
            return false;
        }
        previous = b;
    }
    if previous == b'.' {
        return false;
    }
    let (mut labels, mut label_len, mut all_digits) = (0usize, 0usize, true);
    let mut previous = b'.';
    for &b in domain {
        if b == b'.' {
            if label_len == 0 || previous == b'-' {
                return false;
            }
            labels += 1;
            label_len = 0;
            all_digits = true;
        } else {
            if !DOMAIN_BYTE[usize::from(b)] || (label_len == 0 && b == b'-') {
                return false;
            }
            label_len += 1;
            if label_len > 63 {
                return false;
            }
            all_digits &= b.is_ascii_digit();
        }
        previous = b;
    }
    // The last label closes at the end; a top-level domain is never all digits.
    label_len > 0 && previous != b'-' && labels >= 1 && !all_digits
}

/// Bytes allowed in the local part: printable ASCII except space and ()<>[]\,;:"@, and any
/// non-ASCII byte (internationalised addresses).
const LOCAL_BYTE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0x21;
    while b < 256 {
        table[b] = b != 0x7f && !matches!(b as u8, b'(' | b')' | b'<' | b'>' | b'[' | b']' | b'\\' | b',' | b';' | b':' | b'"' | b'@');
        b += 1;
    }
    table
};

/// Bytes allowed in a domain label: ASCII letters, digits, hyphen, and non-ASCII bytes.
const DOMAIN_BYTE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = (b as u8).is_ascii_alphanumeric() || b == b'-' as usize || b >= 0x80;
        b += 1;
    }
    table
};

/// USPS two-letter codes: the 50 states, DC, the territories (AS, GU, MP, PR, VI, UM), the
/// freely associated states (FM, MH, PW) and the military "states" (AA, AE, AP). Upper case.
pub const US_STATES: [&str; 62] = [
    "AK", "AL", "AR", "AZ", "CA", "CO", "CT", "DE", "FL", "GA", "HI", "IA", "ID", "IL", "IN", "KS",
    "KY", "LA", "MA", "MD", "ME", "MI", "MN", "MO", "MS", "MT", "NC", "ND", "NE", "NH", "NJ", "NM",
    "NV", "NY", "OH", "OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VA", "VT", "WA", "WI",
    "WV", "WY", "DC", "AS", "GU", "MP", "PR", "VI", "UM", "FM", "MH", "PW", "AA", "AE",
];

pub fn is_valid_us_state(value: &[u8]) -> bool {
    value.len() == 2 && (US_STATES.iter().any(|s| s.as_bytes() == value) || value == b"AP")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn npi_vectors() {
        for valid in ["1234567893", "1245319599", "1679576722", "2000000002", "1003000126"] {
            assert!(is_valid_npi(valid.as_bytes()), "{valid}");
        }
        for invalid in ["1234567890", "123456789", "12345678933", "3234567893", "12345678a3", "", " 234567893"] {
            assert!(!is_valid_npi(invalid.as_bytes()), "{invalid}");
        }
    }

    #[test]
    fn dea_vectors() {
        assert!(is_valid_dea(b"AP5836727"));
        assert!(is_valid_dea(b"BJ1234563"));
        // Business-address registrants: 9 in place of the last name's initial.
        assert!(is_valid_dea(b"F91234563"));
        assert!(is_valid_dea(b"A95836727"));
        for invalid in [
            "AB4523767", "ap5836727", "A15836727", "A05836727", "A85836727", "9P5836727", "995836727",
            "F91234564", "F9123456", "f91234563", "AP583672", "AP58367270", "AP583672X", "",
        ] {
            assert!(!is_valid_dea(invalid.as_bytes()), "{invalid}");
        }
    }

    #[test]
    fn e164_vectors() {
        for valid in ["+14155552671", "+442071838750", "+12345678", "+123456789012345"] {
            assert!(is_valid_e164(valid.as_bytes()), "{valid}");
        }
        for invalid in ["14155552671", "+04155552671", "+1234567", "+1234567890123456", "+1 415 555 2671", "+", ""] {
            assert!(!is_valid_e164(invalid.as_bytes()), "{invalid}");
        }
    }

    #[test]
    fn email_vectors() {
        for valid in ["ana.lima@clinic.example", "a@b.co", "first+tag@sub.domain.org", "user@xn--bcher-kva.example", "ünïcode@bücher.de"] {
            assert!(is_valid_email(valid.as_bytes()), "{valid}");
        }
        let long_local = format!("{}@example.com", "a".repeat(65));
        for invalid in [
            "plainaddress", "@example.com", "a@", "a@b", "a@@b.com", "a@b@c.com", "a b@c.com", "a@b .com",
            "a@-b.com", "a@b-.com", "a@b..com", ".a@b.com", "a.@b.com", "a..b@c.com", "a@b.123", "a\t@b.com",
            "a@b.com\n", long_local.as_str(),
        ] {
            assert!(!is_valid_email(invalid.as_bytes()), "{invalid:?}");
        }
    }

    #[test]
    fn us_states() {
        for valid in ["CA", "NY", "DC", "PR", "GU", "VI", "AS", "MP", "AP", "AE"] {
            assert!(is_valid_us_state(valid.as_bytes()), "{valid}");
        }
        for invalid in ["ca", "XX", "C", "CAL", "", "ZZ"] {
            assert!(!is_valid_us_state(invalid.as_bytes()), "{invalid}");
        }
        assert_eq!(US_STATES.len() + 1, 63);
    }

    proptest! {
        /// Changing any one digit of a valid NPI to another digit makes it invalid (Luhn catches
        /// every single-digit error).
        #[test]
        fn every_single_digit_change_of_an_npi_is_caught(position in 0usize..10, new_digit in 0u8..10) {
            let mut npi = *b"1234567893";
            prop_assume!(npi[position] != b'0' + new_digit);
            npi[position] = b'0' + new_digit;
            prop_assert!(!is_valid_npi(&npi));
        }

        /// The DEA checksum catches every single-digit change except one it cannot by
        /// construction: a digit of weight 2 (d2, d4, d6) changed by exactly 5 moves the sum by 10.
        #[test]
        fn every_single_digit_change_of_a_dea_number_is_caught(position in 2usize..9, new_digit in 0u8..10) {
            let mut dea = *b"AP5836727";
            let old_digit = dea[position] - b'0';
            prop_assume!(old_digit != new_digit);
            dea[position] = b'0' + new_digit;
            let weight_two = matches!(position, 3 | 5 | 7);
            let blind_spot = weight_two && old_digit.abs_diff(new_digit) == 5;
            prop_assert_eq!(is_valid_dea(&dea), blind_spot);
        }

        #[test]
        fn random_input_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = (is_valid_npi(&bytes), is_valid_dea(&bytes), is_valid_e164(&bytes),
                     is_valid_email(&bytes), is_valid_us_state(&bytes));
        }
    }
}
