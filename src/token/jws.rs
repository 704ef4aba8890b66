//! Compact JWS (RFC 7515) signature verification against a JSON Web Key Set (RFC 7517), for
//! the verified request context. Pure Rust: no PostgreSQL here.
//!
//! Only asymmetric algorithms exist here: EdDSA (Ed25519, RFC 8037), ES256 (ECDSA P-256 with
//! SHA-256) and RS256 (RSASSA-PKCS1-v1_5 with SHA-256). There is no HMAC and no `none`, so the
//! classic confusions cannot happen: a token whose header says `HS256` or `none` is refused
//! before any key is looked at, and a key is only ever used with the one algorithm its type
//! (and its own `alg` member, when present) allows, so a header cannot make an RSA or EC public
//! key serve as an HMAC secret or one curve's key verify another's signatures.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};
use sha2::Sha256;

/// Tokens longer than this are refused before any parsing: an identity provider's token is a
/// few hundred bytes to a few KiB.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// RSA keys shorter than this are refused when the key set is read.
pub const MIN_RSA_BITS: usize = 2048;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    EdDSA,
    ES256,
    RS256,
}

impl Algorithm {
    pub const ALL: [Algorithm; 3] = [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256];

    pub fn from_name(name: &str) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|alg| alg.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::EdDSA => "EdDSA",
            Algorithm::ES256 => "ES256",
            Algorithm::RS256 => "RS256",
        }
    }
}

/// A public key of the key set, ready to verify with.
#[derive(Clone)]
pub enum PublicKey {
    Ed25519(ed25519_dalek::VerifyingKey),
    P256(p256::ecdsa::VerifyingKey),
    Rsa(rsa::pkcs1v15::VerifyingKey<Sha256>),
}

impl PublicKey {
    /// The one algorithm this key verifies.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            PublicKey::Ed25519(_) => Algorithm::EdDSA,
            PublicKey::P256(_) => Algorithm::ES256,
            PublicKey::Rsa(_) => Algorithm::RS256,
        }
    }

    fn verifies(&self, signed: &[u8], signature: &[u8]) -> bool {
        use p256::ecdsa::signature::Verifier;
        match self {
            PublicKey::Ed25519(key) => {
                let Ok(bytes) = <[u8; 64]>::try_from(signature) else { return false };
                // verify_strict: refuses the small-order keys and non-canonical signatures that
                // plain Ed25519 verification lets through.
                key.verify_strict(signed, &ed25519_dalek::Signature::from_bytes(&bytes)).is_ok()
            }
            PublicKey::P256(key) => {
                // JWS carries ECDSA signatures as r || s, 32 bytes each (RFC 7518 3.4), not DER.
                let Ok(signature) = p256::ecdsa::Signature::from_slice(signature) else { return false };
                key.verify(signed, &signature).is_ok()
            }
            PublicKey::Rsa(key) => {
                let Ok(signature) = rsa::pkcs1v15::Signature::try_from(signature) else { return false };
                key.verify(signed, &signature).is_ok()
            }
        }
    }
}

/// One key of the set: its id (`kid`), when it has one.
#[derive(Clone)]
pub struct Jwk {
    pub kid: Option<String>,
    pub key: PublicKey,
}

/// The verification keys, as read from the JWKS file.
#[derive(Clone, Default)]
pub struct KeySet {
    pub keys: Vec<Jwk>,
}

/// Why a key set file was refused, naming the key by its position (and kid) but never its bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct BadKeySet(pub String);

fn b64(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

impl KeySet {
    /// Reads a JWKS document (`{"keys": [...]}`). Every key must be a public signature key of a
    /// supported type; a symmetric (`oct`) or private key, an unknown type, a short RSA key or a
    /// repeated kid makes the whole set invalid, so that a mistake in the file is found when it
    /// is loaded, not when a token happens to name that key.
    pub fn parse(json: &[u8]) -> Result<KeySet, BadKeySet> {
        let document: Value = serde_json::from_slice(json).map_err(|e| BadKeySet(format!("it is not JSON ({e})")))?;
        let Some(keys) = document.get("keys").and_then(Value::as_array) else {
            return Err(BadKeySet("it has no \"keys\" array".to_owned()));
        };
        if keys.is_empty() {
            return Err(BadKeySet("its \"keys\" array is empty".to_owned()));
        }
        let mut set = KeySet::default();
        for (n, jwk) in keys.iter().enumerate() {
            let name = match jwk.get("kid").and_then(Value::as_str) {
                Some(kid) => format!("key {} (kid {kid:?})", n + 1),
                None => format!("key {}", n + 1),
            };
            let key = Self::parse_key(jwk).map_err(|why| BadKeySet(format!("{name}: {why}")))?;
            let kid = jwk.get("kid").and_then(Value::as_str).map(str::to_owned);
            if kid.is_some() && set.keys.iter().any(|other| other.kid == kid) {
                return Err(BadKeySet(format!("{name}: its kid is used twice")));
            }
            set.keys.push(Jwk { kid, key });
        }
        Ok(set)
    }

    fn parse_key(jwk: &Value) -> Result<PublicKey, String> {
        let member = |name: &str| jwk.get(name).and_then(Value::as_str);
        if let Some(usage) = member("use") {
            if usage != "sig" {
                return Err(format!("\"use\" is {usage:?}, not \"sig\""));
            }
        }
        if jwk.get("d").is_some() || jwk.get("p").is_some() || jwk.get("k").is_some() {
            return Err("it holds private or secret key material: publish public keys only".to_owned());
        }
        let bytes = |name: &str| -> Result<Vec<u8>, String> {
            b64(member(name).ok_or_else(|| format!("\"{name}\" is missing"))?)
                .ok_or_else(|| format!("\"{name}\" is not base64url"))
        };
        let key = match member("kty") {
            Some("OKP") => {
                if member("crv") != Some("Ed25519") {
                    return Err("an OKP key must be on curve Ed25519".to_owned());
                }
                let x = <[u8; 32]>::try_from(bytes("x")?).map_err(|_| "\"x\" is not 32 bytes".to_owned())?;
                let key = ed25519_dalek::VerifyingKey::from_bytes(&x).map_err(|_| "\"x\" is not an Ed25519 point".to_owned())?;
                if key.is_weak() {
                    return Err("\"x\" is a small-order (weak) Ed25519 key".to_owned());
                }
                PublicKey::Ed25519(key)
            }
            Some("EC") => {
                if member("crv") != Some("P-256") {
                    return Err("an EC key must be on curve P-256 (ES256)".to_owned());
                }
                let (x, y) = (bytes("x")?, bytes("y")?);
                if x.len() != 32 || y.len() != 32 {
                    return Err("\"x\" and \"y\" must be 32 bytes each".to_owned());
                }
                let point = p256::EncodedPoint::from_affine_coordinates(x.as_slice().into(), y.as_slice().into(), false);
                PublicKey::P256(
                    p256::ecdsa::VerifyingKey::from_encoded_point(&point).map_err(|_| "not a point of P-256".to_owned())?,
                )
            }
            Some("RSA") => {
                let n = rsa::BigUint::from_bytes_be(&bytes("n")?);
                let e = rsa::BigUint::from_bytes_be(&bytes("e")?);
                let key = rsa::RsaPublicKey::new(n, e).map_err(|e| format!("not a valid RSA public key ({e})"))?;
                if rsa::traits::PublicKeyParts::size(&key) * 8 < MIN_RSA_BITS {
                    return Err(format!("an RSA key must have at least {MIN_RSA_BITS} bits"));
                }
                PublicKey::Rsa(rsa::pkcs1v15::VerifyingKey::<Sha256>::new(key))
            }
            Some("oct") => return Err("symmetric (oct) keys are refused: HMAC tokens are not accepted".to_owned()),
            Some(other) => return Err(format!("key type {other:?} is not supported (OKP Ed25519, EC P-256, RSA)")),
            None => return Err("\"kty\" is missing".to_owned()),
        };
        if let Some(alg) = member("alg") {
            if alg != key.algorithm().name() {
                return Err(format!("its \"alg\" {alg:?} does not match its key type ({})", key.algorithm().name()));
            }
        }
        Ok(key)
    }
}

/// Why a token was refused. The variants name what failed; none carries token content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejected {
    TooLong,
    /// Not three base64url parts, or a part that is not what it must be (named).
    Malformed(&'static str),
    /// `alg` is `none`, HMAC, unknown, or not in the allow-list (the name, as the header says it,
    /// cut to 20 characters).
    AlgorithmRefused(String),
    /// The header has `crit`: no extension is understood here.
    CriticalHeader,
    /// No key of the set has this kid, or (no kid) none or several keys fit the algorithm.
    UnknownKey,
    BadSignature,
}

/// The verified token's claims (its payload), and the kid of the key that verified it.
#[derive(Debug)]
pub struct Verified {
    pub claims: Map<String, Value>,
}

/// Verifies a compact JWS and returns its claims. `allowed` is the algorithm allow-list.
pub fn verify(token: &[u8], keys: &KeySet, allowed: &[Algorithm]) -> Result<Verified, Rejected> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(Rejected::TooLong);
    }
    let text = std::str::from_utf8(token).map_err(|_| Rejected::Malformed("token"))?.trim();
    let mut parts = text.split('.');
    let (Some(header64), Some(payload64), Some(signature64), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Rejected::Malformed("token"));
    };
    let header: Map<String, Value> = b64(header64)
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or(Rejected::Malformed("header"))?;
    let alg_name = header.get("alg").and_then(Value::as_str).ok_or(Rejected::Malformed("header"))?;
    let algorithm = Algorithm::from_name(alg_name)
        .filter(|alg| allowed.contains(alg))
        .ok_or_else(|| Rejected::AlgorithmRefused(alg_name.chars().take(20).collect()))?;
    if header.contains_key("crit") {
        return Err(Rejected::CriticalHeader);
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.as_str()),
        Some(_) => return Err(Rejected::Malformed("header")),
    };
    let mut fitting = keys.keys.iter().filter(|jwk| jwk.key.algorithm() == algorithm);
    let key = match kid {
        Some(kid) => fitting.find(|jwk| jwk.kid.as_deref() == Some(kid)),
        // Without a kid, only an unambiguous key set is accepted.
        None => match (fitting.next(), fitting.next()) {
            (Some(only), None) => Some(only),
            _ => None,
        },
    }
    .ok_or(Rejected::UnknownKey)?;
    let signature = b64(signature64).ok_or(Rejected::Malformed("signature"))?;
    let signed_part = &text.as_bytes()[..header64.len() + 1 + payload64.len()];
    if !key.key.verifies(signed_part, &signature) {
        return Err(Rejected::BadSignature);
    }
    let claims: Map<String, Value> = b64(payload64)
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or(Rejected::Malformed("payload"))?;
    Ok(Verified { claims })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::Signer;
    use proptest::prelude::*;

    fn signing_key() -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&[7; 32])
    }

    fn key_set() -> KeySet {
        let x = URL_SAFE_NO_PAD.encode(signing_key().verifying_key().as_bytes());
        KeySet::parse(format!(r#"{{"keys": [{{"kty": "OKP", "crv": "Ed25519", "kid": "k1", "x": "{x}"}}]}}"#).as_bytes())
            .expect("a valid key set")
    }

    fn token(header: &str, claims: &str) -> String {
        let signing_input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
        let signature = signing_key().sign(signing_input.as_bytes());
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
    }

    #[test]
    fn a_signed_token_verifies_and_every_edit_is_refused() {
        let good = token(r#"{"alg":"EdDSA","kid":"k1"}"#, r#"{"sub":"x"}"#);
        let verified = verify(good.as_bytes(), &key_set(), &Algorithm::ALL).unwrap();
        assert_eq!(verified.claims["sub"], "x");
        let (signing_input, _) = good.rsplit_once('.').unwrap();
        let forged = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode([0u8; 64]));
        assert_eq!(verify(forged.as_bytes(), &key_set(), &Algorithm::ALL).err(), Some(Rejected::BadSignature));
        assert_eq!(verify(good.as_bytes(), &key_set(), &[Algorithm::ES256]).err(), Some(Rejected::AlgorithmRefused("EdDSA".into())));
        let other_kid = token(r#"{"alg":"EdDSA","kid":"k2"}"#, "{}");
        assert_eq!(verify(other_kid.as_bytes(), &key_set(), &Algorithm::ALL).err(), Some(Rejected::UnknownKey));
        let no_kid = token(r#"{"alg":"EdDSA"}"#, r#"{"a":1}"#);
        assert!(verify(no_kid.as_bytes(), &key_set(), &Algorithm::ALL).is_ok());
        for alg in ["none", "HS256", "ES512", ""] {
            let confused = token(&format!(r#"{{"alg":"{alg}","kid":"k1"}}"#), "{}");
            assert!(matches!(verify(confused.as_bytes(), &key_set(), &Algorithm::ALL), Err(Rejected::AlgorithmRefused(_))), "{alg}");
        }
        let critical = token(r#"{"alg":"EdDSA","kid":"k1","crit":["x"]}"#, "{}");
        assert_eq!(verify(critical.as_bytes(), &key_set(), &Algorithm::ALL).err(), Some(Rejected::CriticalHeader));
        let long = "a".repeat(MAX_TOKEN_BYTES + 1);
        assert_eq!(verify(long.as_bytes(), &key_set(), &Algorithm::ALL).err(), Some(Rejected::TooLong));
        // The claims must be a JSON object, checked after the signature.
        let array = token(r#"{"alg":"EdDSA","kid":"k1"}"#, "[1]");
        assert_eq!(verify(array.as_bytes(), &key_set(), &Algorithm::ALL).err(), Some(Rejected::Malformed("payload")));
    }

    #[test]
    fn a_key_set_with_any_unusable_key_is_refused() {
        for (json, why) in [
            (r#"{"keys": []}"#, "empty"),
            (r#"{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}"#, "secret"),
            (r#"{"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "AAAA", "d": "AAAA"}]}"#, "private"),
            (r#"{"keys": [{"kty": "OKP", "crv": "X25519", "x": "AAAA"}]}"#, "Ed25519"),
            (r#"{"keys": [{"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"}]}"#, "P-256"),
            (r#"{"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB"}]}"#, "RSA"),
            (r#"{"keys": [{"kty": "OKP", "crv": "Ed25519", "use": "enc", "x": "AAAA"}]}"#, "sig"),
            (r#"not json"#, "JSON"),
        ] {
            let error = KeySet::parse(json.as_bytes()).err().unwrap_or_else(|| panic!("accepted: {json}"));
            assert!(error.0.contains(why), "{json}: {}", error.0);
        }
        // A small-order Ed25519 point (the identity) is refused.
        let identity = URL_SAFE_NO_PAD.encode({
            let mut point = [0u8; 32];
            point[0] = 1;
            point
        });
        let weak = format!(r#"{{"keys": [{{"kty": "OKP", "crv": "Ed25519", "x": "{identity}"}}]}}"#);
        assert!(KeySet::parse(weak.as_bytes()).is_err());
        // A kid used twice.
        let x = URL_SAFE_NO_PAD.encode(signing_key().verifying_key().as_bytes());
        let twice = format!(
            r#"{{"keys": [{{"kty": "OKP", "crv": "Ed25519", "kid": "a", "x": "{x}"}}, {{"kty": "OKP", "crv": "Ed25519", "kid": "a", "x": "{x}"}}]}}"#
        );
        assert!(KeySet::parse(twice.as_bytes()).err().expect("refused").0.contains("twice"));
    }

    proptest! {
        #[test]
        fn arbitrary_input_never_panics(token in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = verify(&token, &key_set(), &Algorithm::ALL);
        }

        #[test]
        fn arbitrary_key_sets_never_panic(json in "\\PC{0,300}") {
            let _ = KeySet::parse(json.as_bytes());
        }
    }
}
