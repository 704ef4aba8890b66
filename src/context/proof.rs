//! The request context as one sealed value, for the nodes of a Citus cluster: `set_context()` on
//! the coordinator writes it into `safeguard.context_proof` with `SET LOCAL`, which Citus sends to
//! the workers of the same distributed transaction; a worker accepts it only when its HMAC,
//! keyed from the master key every node holds, is right. So a worker's context still comes from
//! `set_context()` (or `set_context_from_token()`) alone, although Citus's own connections cannot
//! be told from a client's.
//!
//! A sealed value can be seen (a worker's `pg_stat_activity` shows Citus's commands to the role
//! they run as) and sent again. For a context taken from a verified token the value says so and
//! carries the token's expiry, id and subject: a role that must use tokens accepts only such a
//! value, until the token's expiry, so a value seen and replayed is worth exactly the token it
//! came from (docs/tenancy.md: a stolen token works until it expires).
//!
//! Format (then lowercase hex): version 2, a byte of flags (which of tenant, actor, impersonator
//! are set; whether a verified token set them), the three ids (16 bytes each, zeros when unset),
//! the request id's length (4 bytes, big-endian) and bytes; for a verified context the token's
//! expiry (8 bytes, seconds since the epoch, big-endian), its id's and subject's lengths (2
//! bytes each) and bytes; then HMAC-SHA-256 over all of it under HMAC-SHA-256(master key,
//! PROOF_KEY_LABEL). Pure: no PostgreSQL here.

use hmac::{Hmac, Mac};
use sha2::Sha256;

const VERSION: u8 = 2;
const VERIFIED_FLAG: u8 = 0b1000;
const PROOF_KEY_LABEL: &[u8] = b"pg_safeguard request context proof v1";
const MAC_BYTES: usize = 32;
const FIXED_BYTES: usize = 2 + 3 * 16 + 4;
/// The longest request id a proof carries (a request id is a correlation id, not a document).
pub const MAX_REQUEST_ID: usize = 4096;
/// The longest token id and subject a proof carries.
pub const MAX_TOKEN_TEXT: usize = 1024;

/// What a verified token adds to a context.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verified {
    /// The token's `exp`, seconds since the epoch.
    pub expires_at: i64,
    pub token_id: Vec<u8>,
    pub subject: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Context {
    pub tenant: Option<[u8; 16]>,
    pub actor: Option<[u8; 16]>,
    pub impersonator: Option<[u8; 16]>,
    pub request_id: Vec<u8>,
    /// Set when a verified token set this context.
    pub verified: Option<Verified>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum BadProof {
    /// Not hex, wrong length, unknown version or flags: not something set_context() wrote.
    Malformed,
    /// Well formed, but not sealed with this cluster's key.
    Forged,
}

fn proof_key(master: &[u8; 32]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(master).expect("HMAC takes any key length");
    mac.update(PROOF_KEY_LABEL);
    mac.finalize().into_bytes().into()
}

fn mac_of(master: &[u8; 32], body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(&proof_key(master)).expect("HMAC takes any key length");
    mac.update(body);
    mac
}

/// The sealed value of a context, as hex (the request id is cut at MAX_REQUEST_ID bytes, a
/// token's id and subject at MAX_TOKEN_TEXT).
pub fn seal(master: &[u8; 32], context: &Context) -> String {
    let request = &context.request_id[..context.request_id.len().min(MAX_REQUEST_ID)];
    let mut body = Vec::with_capacity(FIXED_BYTES + request.len() + MAC_BYTES + 16);
    body.push(VERSION);
    let ids = [context.tenant, context.actor, context.impersonator];
    let flags = ids.iter().enumerate().fold(0u8, |flags, (n, id)| flags | (u8::from(id.is_some()) << n));
    body.push(if context.verified.is_some() { flags | VERIFIED_FLAG } else { flags });
    for id in ids {
        body.extend_from_slice(&id.unwrap_or([0; 16]));
    }
    body.extend_from_slice(&(request.len() as u32).to_be_bytes());
    body.extend_from_slice(request);
    if let Some(verified) = &context.verified {
        body.extend_from_slice(&verified.expires_at.to_be_bytes());
        for text in [&verified.token_id, &verified.subject] {
            let text = &text[..text.len().min(MAX_TOKEN_TEXT)];
            body.extend_from_slice(&(text.len() as u16).to_be_bytes());
            body.extend_from_slice(text);
        }
    }
    let tag = mac_of(master, &body).finalize().into_bytes();
    body.extend_from_slice(&tag);
    body.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(text: &[u8]) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    text.chunks(2).map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?)).collect()
}

/// The context a proof carries, without checking its seal: for values the setting's check hook
/// has already opened with `open`.
pub fn read(text: &[u8]) -> Result<Context, BadProof> {
    let bytes = from_hex(text).ok_or(BadProof::Malformed)?;
    if bytes.len() < FIXED_BYTES + MAC_BYTES || bytes[0] != VERSION || bytes[1] & !(0b111 | VERIFIED_FLAG) != 0 {
        return Err(BadProof::Malformed);
    }
    let body = &bytes[..bytes.len() - MAC_BYTES];
    let length = u32::from_be_bytes(body[50..54].try_into().expect("4 bytes")) as usize;
    if length > MAX_REQUEST_ID || body.len() < FIXED_BYTES + length {
        return Err(BadProof::Malformed);
    }
    let mut rest = &body[FIXED_BYTES + length..];
    let verified = if bytes[1] & VERIFIED_FLAG != 0 {
        let (expiry, after) = rest.split_first_chunk::<8>().ok_or(BadProof::Malformed)?;
        rest = after;
        let mut texts = [Vec::new(), Vec::new()];
        for text in &mut texts {
            let (len, after) = rest.split_first_chunk::<2>().ok_or(BadProof::Malformed)?;
            let len = u16::from_be_bytes(*len) as usize;
            if len > MAX_TOKEN_TEXT || after.len() < len {
                return Err(BadProof::Malformed);
            }
            *text = after[..len].to_vec();
            rest = &after[len..];
        }
        let [token_id, subject] = texts;
        Some(Verified { expires_at: i64::from_be_bytes(*expiry), token_id, subject })
    } else {
        None
    };
    if !rest.is_empty() {
        return Err(BadProof::Malformed);
    }
    let id = |n: usize| -> Option<[u8; 16]> {
        (bytes[1] & (1 << n) != 0).then(|| bytes[2 + 16 * n..18 + 16 * n].try_into().expect("16 bytes"))
    };
    Ok(Context {
        tenant: id(0),
        actor: id(1),
        impersonator: id(2),
        request_id: body[FIXED_BYTES..FIXED_BYTES + length].to_vec(),
        verified,
    })
}

/// The context a proof carries, when it was sealed with this master key.
pub fn open(master: &[u8; 32], text: &[u8]) -> Result<Context, BadProof> {
    let context = read(text)?;
    let bytes = from_hex(text).ok_or(BadProof::Malformed)?;
    let (body, tag) = bytes.split_at(bytes.len() - MAC_BYTES);
    mac_of(master, body).verify_slice(tag).map_err(|_| BadProof::Forged)?;
    Ok(context)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MASTER: [u8; 32] = [7; 32];

    fn sample() -> Context {
        Context {
            tenant: Some([0xa; 16]),
            actor: None,
            impersonator: Some([0xf; 16]),
            request_id: b"req 'x' \\ \xc3\xbc".to_vec(),
            verified: None,
        }
    }

    #[test]
    fn a_sealed_context_opens_to_itself() {
        let proof = seal(&MASTER, &sample());
        assert_eq!(open(&MASTER, proof.as_bytes()), Ok(sample()));
        assert_eq!(read(proof.as_bytes()), Ok(sample()));
        assert!(proof.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_eq!(open(&MASTER, seal(&MASTER, &Context::default()).as_bytes()), Ok(Context::default()));
    }

    #[test]
    fn another_key_or_any_changed_bit_is_refused() {
        let proof = seal(&MASTER, &sample());
        assert_eq!(open(&[8; 32], proof.as_bytes()), Err(BadProof::Forged));
        // The tenant changed in place (a hex digit of its first byte).
        let mut forged = proof.clone().into_bytes();
        forged[5] = if forged[5] == b'0' { b'1' } else { b'0' };
        assert_eq!(open(&MASTER, &forged), Err(BadProof::Forged));
        // The tag changed.
        let mut retagged = proof.into_bytes();
        let last = retagged.len() - 1;
        retagged[last] = if retagged[last] == b'0' { b'1' } else { b'0' };
        assert_eq!(open(&MASTER, &retagged), Err(BadProof::Forged));
    }

    #[test]
    fn the_verified_mark_and_expiry_are_sealed() {
        let verified = Context {
            verified: Some(Verified { expires_at: 1_800_000_000, token_id: b"jti-1".to_vec(), subject: b"user".to_vec() }),
            ..sample()
        };
        let proof = seal(&MASTER, &verified);
        assert_eq!(open(&MASTER, proof.as_bytes()), Ok(verified));
        // Unmarking it, or moving its expiry, breaks the seal.
        let mut unmarked = proof.clone().into_bytes();
        unmarked[2..4].copy_from_slice(b"05");
        assert!(open(&MASTER, &unmarked).is_err());
        let expiry_at = 2 * (FIXED_BYTES + sample().request_id.len());
        let mut later = proof.into_bytes();
        later[expiry_at + 8] = if later[expiry_at + 8] == b'f' { b'e' } else { b'f' };
        assert_eq!(open(&MASTER, &later), Err(BadProof::Forged));
    }

    #[test]
    fn malformed_values_are_told_apart() {
        for text in [&b""[..], b"zz", b"0", b"01", &[b'0'; 200][..]] {
            assert_eq!(open(&MASTER, text), Err(BadProof::Malformed), "{}", String::from_utf8_lossy(text));
        }
        let proof = seal(&MASTER, &sample());
        assert_eq!(open(&MASTER, &proof.as_bytes()[..proof.len() - 2]), Err(BadProof::Malformed));
        assert_eq!(open(&MASTER, proof.to_uppercase().as_bytes()), Err(BadProof::Malformed));
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = open(&MASTER, &text);
        }

        #[test]
        fn every_context_round_trips(tenant in any::<Option<[u8; 16]>>(), actor in any::<Option<[u8; 16]>>(),
                                     request in proptest::collection::vec(any::<u8>(), 0..100)) {
            let context = Context { tenant, actor, impersonator: None, request_id: request, verified: None };
            prop_assert_eq!(open(&MASTER, seal(&MASTER, &context).as_bytes()), Ok(context));
        }

        #[test]
        fn every_verified_context_round_trips(tenant in any::<Option<[u8; 16]>>(), expires_at in any::<i64>(),
                                              token_id in proptest::collection::vec(any::<u8>(), 0..80),
                                              subject in proptest::collection::vec(any::<u8>(), 0..80)) {
            let context = Context { tenant, verified: Some(Verified { expires_at, token_id, subject }), ..Context::default() };
            prop_assert_eq!(open(&MASTER, seal(&MASTER, &context).as_bytes()), Ok(context));
        }
    }
}
