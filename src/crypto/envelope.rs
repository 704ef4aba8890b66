//! The stored form of an encrypted value (format version 1), pure Rust.
//!
//! ```text
//! byte 0          format version, 0x01
//! bytes 1..5      key id, unsigned 32-bit big-endian (safeguard.keys.id)
//! bytes 5..17     nonce, 96 random bits
//! bytes 17..n-16  ciphertext (as long as the plaintext)
//! bytes n-16..n   GCM tag, 128 bits
//! ```
//!
//! Associated data (authenticated, not stored): the version byte, the 4 key-id bytes and the
//! 16 bytes of the key's tenant id (all zero for the global key). Changing any stored byte, or
//! presenting the value under another key or tenant, fails the tag check.
//!
//! Text form: `sgenc:` followed by the standard base64 (with padding) of those bytes.

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

pub const VERSION: u8 = 1;
pub const NONCE_LEN: usize = 12;
pub const TAG_LEN: usize = 16;
pub const HEADER_LEN: usize = 1 + 4 + NONCE_LEN;
pub const OVERHEAD: usize = HEADER_LEN + TAG_LEN;
pub const TEXT_PREFIX: &str = "sgenc:";

/// What is wrong with bytes that claim to be an envelope. Never carries the bytes themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// Shorter than the 33 bytes of an envelope of an empty value.
    TooShort,
    /// A format version this build does not know.
    UnknownVersion(u8),
    /// Key id 0 is never assigned.
    NoKey,
    /// The text form's base64 part does not decode.
    BadBase64,
}

impl Malformed {
    pub fn detail(self) -> String {
        match self {
            Malformed::TooShort => format!("An envelope has at least {OVERHEAD} bytes."),
            Malformed::UnknownVersion(v) => {
                format!("Format version {v} is unknown; this version of pg_safeguard reads version {VERSION}.")
            }
            Malformed::NoKey => "The key id is 0, which no key has.".to_owned(),
            Malformed::BadBase64 => format!(
                "After the prefix {TEXT_PREFIX} the text form holds standard base64 with padding."
            ),
        }
    }
}

/// The tag check failed: the value was altered, or is presented under the wrong key or tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntegrityFailure;

/// A parsed, structurally valid envelope, borrowing the stored bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope<'a> {
    pub key_id: u32,
    pub nonce: &'a [u8; NONCE_LEN],
    /// Ciphertext followed by the tag.
    pub sealed: &'a [u8],
}

impl<'a> Envelope<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Self, Malformed> {
        if bytes.len() < OVERHEAD {
            return Err(Malformed::TooShort);
        }
        if bytes[0] != VERSION {
            return Err(Malformed::UnknownVersion(bytes[0]));
        }
        let key_id = u32::from_be_bytes(bytes[1..5].try_into().expect("4 bytes"));
        if key_id == 0 {
            return Err(Malformed::NoKey);
        }
        Ok(Envelope {
            key_id,
            nonce: bytes[5..HEADER_LEN].try_into().expect("12 bytes"),
            sealed: &bytes[HEADER_LEN..],
        })
    }

    /// The length of the plaintext inside.
    pub fn plaintext_len(&self) -> usize {
        self.sealed.len() - TAG_LEN
    }

    /// Decrypts into `out` (exactly `plaintext_len()` bytes), if the tag verifies under `cipher`
    /// for a key of `tenant`. On failure `out` is zeroed: unauthenticated bytes never escape.
    pub fn open_into(&self, cipher: &Aes256Gcm, tenant: &[u8; 16], out: &mut [u8]) -> Result<(), IntegrityFailure> {
        let split = self.plaintext_len();
        out.copy_from_slice(&self.sealed[..split]);
        let tag = Tag::from_slice(&self.sealed[split..]);
        cipher
            .decrypt_in_place_detached(Nonce::from_slice(self.nonce), &associated_data(self.key_id, tenant), out, tag)
            .map_err(|_| {
                out.fill(0);
                IntegrityFailure
            })
    }

    /// The plaintext, if the tag verifies under `cipher` for a key of `tenant`.
    pub fn open(&self, cipher: &Aes256Gcm, tenant: &[u8; 16]) -> Result<Vec<u8>, IntegrityFailure> {
        let mut plaintext = vec![0u8; self.plaintext_len()];
        self.open_into(cipher, tenant, &mut plaintext)?;
        Ok(plaintext)
    }
}

/// The bytes every envelope authenticates besides its ciphertext.
pub fn associated_data(key_id: u32, tenant: &[u8; 16]) -> [u8; 21] {
    let mut aad = [0u8; 21];
    aad[0] = VERSION;
    aad[1..5].copy_from_slice(&key_id.to_be_bytes());
    aad[5..].copy_from_slice(tenant);
    aad
}

/// Encrypts `plaintext` into `out`, which must be exactly `OVERHEAD + plaintext.len()` bytes
/// (the caller allocates it where the value will live). The caller supplies a fresh random nonce.
pub fn seal_into(
    cipher: &Aes256Gcm,
    key_id: u32,
    tenant: &[u8; 16],
    nonce: &[u8; NONCE_LEN],
    plaintext: &[u8],
    out: &mut [u8],
) {
    assert_eq!(out.len(), OVERHEAD + plaintext.len(), "envelope buffer of the wrong size");
    out[0] = VERSION;
    out[1..5].copy_from_slice(&key_id.to_be_bytes());
    out[5..HEADER_LEN].copy_from_slice(nonce);
    let (body, tag_out) = out[HEADER_LEN..].split_at_mut(plaintext.len());
    body.copy_from_slice(plaintext);
    let tag = cipher
        .encrypt_in_place_detached(Nonce::from_slice(nonce), &associated_data(key_id, tenant), body)
        .expect("AES-GCM encrypts up to 64 GiB per message; PostgreSQL values are at most 1 GiB");
    tag_out.copy_from_slice(&tag);
}

/// Encrypts `plaintext` into a new envelope.
pub fn seal(cipher: &Aes256Gcm, key_id: u32, tenant: &[u8; 16], nonce: &[u8; NONCE_LEN], plaintext: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; OVERHEAD + plaintext.len()];
    seal_into(cipher, key_id, tenant, nonce, plaintext, &mut out);
    out
}

/// A cipher for a 256-bit key.
pub fn cipher(key: &[u8; 32]) -> Aes256Gcm {
    Aes256Gcm::new(key.into())
}

/// The text form of envelope bytes.
pub fn to_text(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(TEXT_PREFIX.len() + bytes.len().div_ceil(3) * 4);
    text.push_str(TEXT_PREFIX);
    STANDARD.encode_string(bytes, &mut text);
    text
}

/// Whether `text` claims to be an envelope (starts with the prefix). Such text must then parse:
/// it is never taken for plaintext, so a damaged envelope is refused instead of encrypted again.
pub fn looks_like_text_form(text: &[u8]) -> bool {
    text.starts_with(TEXT_PREFIX.as_bytes())
}

/// Envelope bytes from their text form, structurally validated.
pub fn from_text(text: &[u8]) -> Result<Vec<u8>, Malformed> {
    let encoded = text
        .strip_prefix(TEXT_PREFIX.as_bytes())
        .ok_or(Malformed::BadBase64)?;
    let bytes = STANDARD.decode(encoded).map_err(|_| Malformed::BadBase64)?;
    Envelope::parse(&bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    const TENANT: [u8; 16] = [
        0x01, 0x8f, 0x2b, 0x3c, 0x4d, 0x5e, 0x7f, 0x60, 0x81, 0x92, 0xa3, 0xb4, 0xc5, 0xd6, 0xe7, 0xf8,
    ];

    /// NIST SP 800-38D / McGrew-Viega test case 16 (AES-256, 96-bit IV, with AAD): checks that the
    /// AES-GCM underneath is the standard one, independently of our envelope.
    #[test]
    fn aes_gcm_matches_the_published_test_case() {
        let key: [u8; 32] = hex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308")
            .try_into()
            .unwrap();
        let iv = hex("cafebabefacedbaddecaf888");
        let plaintext = hex(
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e24\
             49a6b525b16aedf5aa0de657ba637b39",
        );
        let aad = hex("feedfacedeadbeeffeedfacedeadbeefabaddad2");
        let mut buffer = plaintext.clone();
        let tag = cipher(&key)
            .encrypt_in_place_detached(Nonce::from_slice(&iv), &aad, &mut buffer)
            .unwrap();
        assert_eq!(
            buffer,
            hex("522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b10\
                 56828838c5f61e6393ba7a0abcc9f662")
        );
        assert_eq!(tag.as_slice(), hex("76fc6ece0f4e1768cddf8853bb2d551b"));
    }

    /// The test vector of docs/encryption.md. tests/crypto/vector.py checks the same bytes with an
    /// independent AES-GCM implementation (OpenSSL through Python's cryptography package).
    #[test]
    fn documented_test_vector() {
        let key: [u8; 32] = hex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
            .try_into()
            .unwrap();
        let nonce: [u8; 12] = hex("a0a1a2a3a4a5a6a7a8a9aaab").try_into().unwrap();
        let aad = associated_data(7, &TENANT);
        assert_eq!(aad.to_vec(), hex("0100000007018f2b3c4d5e7f608192a3b4c5d6e7f8"));
        let envelope = seal(&cipher(&key), 7, &TENANT, &nonce, b"Allergic to penicillin");
        assert_eq!(
            to_text(&envelope),
            include_str!("../../tests/crypto/vector_envelope.txt").trim()
        );
        let parsed = Envelope::parse(&envelope).unwrap();
        assert_eq!(parsed.key_id, 7);
        assert_eq!(parsed.open(&cipher(&key), &TENANT).unwrap(), b"Allergic to penicillin");
    }

    #[test]
    fn round_trip_and_text_form() {
        let c = cipher(&[7u8; 32]);
        let envelope = seal(&c, 42, &TENANT, &[9u8; 12], b"");
        assert_eq!(envelope.len(), OVERHEAD);
        let text = to_text(&envelope);
        assert!(looks_like_text_form(text.as_bytes()));
        assert_eq!(from_text(text.as_bytes()).unwrap(), envelope);
        assert_eq!(Envelope::parse(&envelope).unwrap().open(&c, &TENANT).unwrap(), b"");
    }

    #[test]
    fn every_flipped_bit_fails_the_tag() {
        let c = cipher(&[3u8; 32]);
        let envelope = seal(&c, 5, &TENANT, &[1u8; 12], b"history of asthma");
        for byte in 0..envelope.len() {
            for bit in 0..8 {
                let mut tampered = envelope.clone();
                tampered[byte] ^= 1 << bit;
                let opened = Envelope::parse(&tampered).map(|e| e.open(&c, &TENANT));
                assert!(!matches!(opened, Ok(Ok(_))), "byte {byte} bit {bit}");
            }
        }
    }

    #[test]
    fn another_tenant_or_key_id_fails() {
        let c = cipher(&[3u8; 32]);
        let envelope = seal(&c, 5, &TENANT, &[1u8; 12], b"x");
        let parsed = Envelope::parse(&envelope).unwrap();
        assert_eq!(parsed.open(&c, &[0u8; 16]), Err(IntegrityFailure));
        assert_eq!(parsed.open(&cipher(&[4u8; 32]), &TENANT), Err(IntegrityFailure));
    }

    #[test]
    fn malformed_envelopes() {
        assert_eq!(Envelope::parse(&[1u8; 32]), Err(Malformed::TooShort));
        let mut bytes = vec![1u8; 40];
        bytes[0] = 2;
        assert_eq!(Envelope::parse(&bytes), Err(Malformed::UnknownVersion(2)));
        bytes[0] = 1;
        bytes[1..5].copy_from_slice(&[0, 0, 0, 0]);
        assert_eq!(Envelope::parse(&bytes), Err(Malformed::NoKey));
        assert_eq!(from_text(b"sgenc:***"), Err(Malformed::BadBase64));
        assert_eq!(from_text(b"sgenc:AAAA"), Err(Malformed::TooShort));
        assert!(!looks_like_text_form(b"plain note"));
    }

    proptest! {
        /// Arbitrary bytes and arbitrary text never panic the parser or the decryption.
        #[test]
        fn arbitrary_input_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let c = cipher(&[5u8; 32]);
            if let Ok(envelope) = Envelope::parse(&bytes) {
                prop_assert!(envelope.open(&c, &TENANT).is_err());
            }
            let mut text = TEXT_PREFIX.as_bytes().to_vec();
            text.extend_from_slice(&bytes);
            let _ = from_text(&text);
        }

        #[test]
        fn seal_then_open(plaintext in proptest::collection::vec(any::<u8>(), 0..500), key_id in 1u32..) {
            let c = cipher(&[8u8; 32]);
            let envelope = seal(&c, key_id, &TENANT, &[2u8; 12], &plaintext);
            let stored = from_text(to_text(&envelope).as_bytes()).unwrap();
            let parsed = Envelope::parse(&stored).unwrap();
            prop_assert_eq!(parsed.key_id, key_id);
            prop_assert_eq!(parsed.open(&c, &TENANT).unwrap(), plaintext);
        }
    }
}
