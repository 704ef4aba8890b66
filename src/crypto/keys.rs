//! Key material, pure Rust: the master key file's contents, wrapping data keys under the master
//! key, and the keys of blind indexes. Nothing here formats key bytes into text: errors say what
//! is wrong, never what the bytes are.

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

pub type Key = Zeroizing<[u8; 32]>;

/// Why the contents of the master key file are not a key. Never carries the contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadKeyFile {
    /// Neither 64 hex digits nor base64 of 32 bytes.
    NotAKey,
    /// Decodes, but all bytes are equal (an all-zero placeholder, say).
    Degenerate,
}

/// The master key from the file's contents: 64 hex digits, or the base64 of 32 bytes, with
/// surrounding whitespace (a trailing newline) ignored.
pub fn parse_master_key(contents: &[u8]) -> Result<Key, BadKeyFile> {
    let text = contents.trim_ascii();
    let mut key = Zeroizing::new([0u8; 32]);
    if text.len() == 64 && text.iter().all(u8::is_ascii_hexdigit) {
        for (i, pair) in text.chunks_exact(2).enumerate() {
            key[i] = (hex_value(pair[0]) << 4) | hex_value(pair[1]);
        }
    } else {
        let decoded = Zeroizing::new(
            STANDARD
                .decode(text)
                .or_else(|_| STANDARD_NO_PAD.decode(text))
                .map_err(|_| BadKeyFile::NotAKey)?,
        );
        if decoded.len() != 32 {
            return Err(BadKeyFile::NotAKey);
        }
        key.copy_from_slice(&decoded);
    }
    if key.iter().all(|&b| b == key[0]) {
        return Err(BadKeyFile::Degenerate);
    }
    Ok(key)
}

fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        _ => digit - b'A' + 10,
    }
}

const WRAP_VERSION: u8 = 1;
const WRAP_LABEL: &[u8] = b"pg_safeguard data key";
/// version (1) | nonce (12) | wrapped key (32) | tag (16)
pub const WRAPPED_LEN: usize = 1 + 12 + 32 + 16;

/// The wrapped key does not open under this master key (another master key, or altered bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnwrapFailure;

/// What a wrapped key is bound to: it unwraps only as the key `key_id` of `tenant`, so wrapped
/// keys cannot be swapped between rows of the key table.
fn wrap_associated_data(key_id: u32, tenant: &[u8; 16]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(WRAP_LABEL.len() + 20);
    aad.extend_from_slice(WRAP_LABEL);
    aad.extend_from_slice(&key_id.to_be_bytes());
    aad.extend_from_slice(tenant);
    aad
}

/// `data_key` encrypted under `master` with AES-256-GCM, as stored in the key table.
pub fn wrap(master: &Key, key_id: u32, tenant: &[u8; 16], nonce: &[u8; 12], data_key: &Key) -> Vec<u8> {
    let mut out = Vec::with_capacity(WRAPPED_LEN);
    out.push(WRAP_VERSION);
    out.extend_from_slice(nonce);
    out.extend_from_slice(&data_key[..]);
    let tag = Aes256Gcm::new((&**master).into())
        .encrypt_in_place_detached(
            Nonce::from_slice(nonce),
            &wrap_associated_data(key_id, tenant),
            &mut out[13..],
        )
        .expect("32 bytes always encrypt");
    out.extend_from_slice(&tag);
    out
}

pub fn unwrap(master: &Key, key_id: u32, tenant: &[u8; 16], wrapped: &[u8]) -> Result<Key, UnwrapFailure> {
    if wrapped.len() != WRAPPED_LEN || wrapped[0] != WRAP_VERSION {
        return Err(UnwrapFailure);
    }
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(&wrapped[13..45]);
    Aes256Gcm::new((&**master).into())
        .decrypt_in_place_detached(
            Nonce::from_slice(&wrapped[1..13]),
            &wrap_associated_data(key_id, tenant),
            &mut key[..],
            Tag::from_slice(&wrapped[45..]),
        )
        .map_err(|_| UnwrapFailure)?;
    Ok(key)
}

type HmacSha256 = Hmac<Sha256>;
const BLIND_INDEX_LABEL: &[u8] = b"pg_safeguard blind index v1";

/// The HMAC key of one tenant's blind index for one purpose:
/// HMAC-SHA-256(master, label || 0x00 || tenant || purpose). Separate purposes (mrn, email)
/// and tenants give unrelated indexes, so equal values do not match across them.
pub fn blind_index_key(master: &Key, tenant: &[u8; 16], purpose: &[u8]) -> Key {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(&master[..]).expect("HMAC takes any key length");
    mac.update(BLIND_INDEX_LABEL);
    mac.update(&[0]);
    mac.update(tenant);
    mac.update(purpose);
    Zeroizing::new(mac.finalize().into_bytes().into())
}

/// The blind index of `value`: HMAC-SHA-256 under the key above.
pub fn blind_index(key: &Key, value: &[u8]) -> [u8; 32] {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(&key[..]).expect("HMAC takes any key length");
    mac.update(value);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn master_key_in_hex_or_base64() {
        let from_hex = parse_master_key(format!("{HEX_KEY}\n").as_bytes()).unwrap();
        assert_eq!(from_hex[31], 0x1f);
        let b64 = STANDARD.encode(*from_hex);
        assert_eq!(*parse_master_key(b64.as_bytes()).unwrap(), *from_hex);
        assert_eq!(*parse_master_key(b64.trim_end_matches('=').as_bytes()).unwrap(), *from_hex);
        assert_eq!(*parse_master_key(HEX_KEY.to_uppercase().as_bytes()).unwrap(), *from_hex);
    }

    #[test]
    fn malformed_master_keys() {
        assert_eq!(parse_master_key(b"").unwrap_err(), BadKeyFile::NotAKey);
        assert_eq!(parse_master_key(&HEX_KEY.as_bytes()[..62]).unwrap_err(), BadKeyFile::NotAKey);
        assert_eq!(parse_master_key(STANDARD.encode([1u8; 16]).as_bytes()).unwrap_err(), BadKeyFile::NotAKey);
        assert_eq!(parse_master_key("0".repeat(64).as_bytes()).unwrap_err(), BadKeyFile::Degenerate);
        assert_eq!(parse_master_key(b"-----BEGIN PRIVATE KEY-----").unwrap_err(), BadKeyFile::NotAKey);
    }

    #[test]
    fn wrap_unwrap_is_bound_to_id_and_tenant() {
        let master = parse_master_key(HEX_KEY.as_bytes()).unwrap();
        let data = Zeroizing::new([0x42u8; 32]);
        let tenant = [9u8; 16];
        let wrapped = wrap(&master, 3, &tenant, &[1u8; 12], &data);
        assert_eq!(wrapped.len(), WRAPPED_LEN);
        assert_eq!(*unwrap(&master, 3, &tenant, &wrapped).unwrap(), *data);
        assert!(unwrap(&master, 4, &tenant, &wrapped).is_err());
        assert!(unwrap(&master, 3, &[0u8; 16], &wrapped).is_err());
        let other = Zeroizing::new([0x43u8; 32]);
        assert!(unwrap(&other, 3, &tenant, &wrapped).is_err());
        assert!(unwrap(&master, 3, &tenant, &wrapped[..60]).is_err());
    }

    #[test]
    fn blind_indexes_are_deterministic_and_separated() {
        let master = parse_master_key(HEX_KEY.as_bytes()).unwrap();
        let a = blind_index_key(&master, &[1u8; 16], b"mrn");
        assert_eq!(blind_index(&a, b"MRN-1"), blind_index(&a, b"MRN-1"));
        assert_ne!(blind_index(&a, b"MRN-1"), blind_index(&a, b"MRN-2"));
        let other_tenant = blind_index_key(&master, &[2u8; 16], b"mrn");
        let other_purpose = blind_index_key(&master, &[1u8; 16], b"email");
        assert_ne!(blind_index(&a, b"MRN-1"), blind_index(&other_tenant, b"MRN-1"));
        assert_ne!(blind_index(&a, b"MRN-1"), blind_index(&other_purpose, b"MRN-1"));
    }
}
