//! The request context as one sealed value, for the nodes of a Citus cluster: `set_context()` on
//! the coordinator writes it into `safeguard.context_proof` with `SET LOCAL`, which Citus sends to
//! the workers of the same distributed transaction; a worker accepts it only when its HMAC,
//! keyed from the master key every node holds, is right. So a worker's context still comes from
//! `set_context()` alone, although Citus's own connections cannot be told from a client's.
//!
//! Format (then lowercase hex): version 1, a byte of flags (which of tenant, actor, impersonator
//! are set), the three ids (16 bytes each, zeros when unset), the request id's length (4 bytes,
//! big-endian) and bytes, and HMAC-SHA-256 over all of it under
//! HMAC-SHA-256(master key, PROOF_KEY_LABEL). Pure: no PostgreSQL here.

use hmac::{Hmac, Mac};
use sha2::Sha256;

const VERSION: u8 = 1;
const PROOF_KEY_LABEL: &[u8] = b"pg_safeguard request context proof v1";
const MAC_BYTES: usize = 32;
const FIXED_BYTES: usize = 2 + 3 * 16 + 4;
/// The longest request id a proof carries (a request id is a correlation id, not a document).
pub const MAX_REQUEST_ID: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Context {
    pub tenant: Option<[u8; 16]>,
    pub actor: Option<[u8; 16]>,
    pub impersonator: Option<[u8; 16]>,
    pub request_id: Vec<u8>,
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

/// The sealed value of a context, as hex (the request id is cut at MAX_REQUEST_ID bytes).
pub fn seal(master: &[u8; 32], context: &Context) -> String {
    let request = &context.request_id[..context.request_id.len().min(MAX_REQUEST_ID)];
    let mut body = Vec::with_capacity(FIXED_BYTES + request.len() + MAC_BYTES);
    body.push(VERSION);
    let ids = [context.tenant, context.actor, context.impersonator];
    body.push(ids.iter().enumerate().fold(0u8, |flags, (n, id)| flags | (u8::from(id.is_some()) << n)));
    for id in ids {
        body.extend_from_slice(&id.unwrap_or([0; 16]));
    }
    body.extend_from_slice(&(request.len() as u32).to_be_bytes());
    body.extend_from_slice(request);
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
    if bytes.len() < FIXED_BYTES + MAC_BYTES || bytes[0] != VERSION || bytes[1] & !0b111 != 0 {
        return Err(BadProof::Malformed);
    }
    let length = u32::from_be_bytes(bytes[50..54].try_into().expect("4 bytes")) as usize;
    if length > MAX_REQUEST_ID || bytes.len() != FIXED_BYTES + length + MAC_BYTES {
        return Err(BadProof::Malformed);
    }
    let id = |n: usize| -> Option<[u8; 16]> {
        (bytes[1] & (1 << n) != 0).then(|| bytes[2 + 16 * n..18 + 16 * n].try_into().expect("16 bytes"))
    };
    Ok(Context {
        tenant: id(0),
        actor: id(1),
        impersonator: id(2),
        request_id: bytes[FIXED_BYTES..FIXED_BYTES + length].to_vec(),
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
        Context { tenant: Some([0xa; 16]), actor: None, impersonator: Some([0xf; 16]), request_id: b"req 'x' \\ \xc3\xbc".to_vec() }
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
            let context = Context { tenant, actor, impersonator: None, request_id: request };
            prop_assert_eq!(open(&MASTER, seal(&MASTER, &context).as_bytes()), Ok(context));
        }
    }
}
