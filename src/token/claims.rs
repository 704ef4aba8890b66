//! A verified token's claims checked (RFC 7519: `exp`, `nbf`, `iss`, `aud`) and mapped onto the
//! request context. Pure Rust: no PostgreSQL here.
//!
//! Claim names are configurable, with dotted paths for nested claims (`act.sub`, the RFC 8693
//! actor claim, names the impersonator by default). A tenant or actor claim that is present but
//! not a uuid is an error, never an empty context; a token without `exp` is refused, since it
//! could be replayed forever.

use crate::context::parse::parse_context_id;
use serde_json::{Map, Value};

/// What the settings say a token must be, and where its context is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub issuer: String,
    pub audience: String,
    /// Seconds of clock difference tolerated for `exp` and `nbf`.
    pub leeway: i64,
    pub tenant_claim: String,
    pub actor_claim: String,
    pub impersonator_claim: String,
    pub request_id_claim: String,
}

/// The context a token sets, and what the audit log records about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenContext {
    pub tenant: Option<[u8; 16]>,
    pub actor: Option<[u8; 16]>,
    pub impersonator: Option<[u8; 16]>,
    pub request_id: Option<String>,
    /// `exp`, seconds since the epoch.
    pub expires_at: i64,
    /// `jti`, when the token has one.
    pub token_id: Option<String>,
    /// `sub`, when the token has one.
    pub subject: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadClaims {
    Expired,
    NotYetValid,
    WrongIssuer,
    WrongAudience,
    /// A claim the context needs, or `exp`, is missing (the claim's name).
    Missing(String),
    /// A claim has the wrong type or is not a uuid (the claim's name).
    Malformed(String),
}

/// The value at a dotted path (`act.sub`) of the claims.
fn claim<'a>(claims: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut value = claims.get(parts.next()?)?;
    for part in parts {
        value = value.as_object()?.get(part)?;
    }
    Some(value)
}

/// A NumericDate claim (seconds, possibly fractional), as whole seconds.
fn date(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, BadClaims> {
    match claims.get(name) {
        None => Ok(None),
        Some(value) => value
            .as_f64()
            .filter(|seconds| seconds.is_finite() && seconds.abs() < 1e15)
            .map(|seconds| Some(seconds.floor() as i64))
            .ok_or_else(|| BadClaims::Malformed(name.to_owned())),
    }
}

fn text<'a>(claims: &'a Map<String, Value>, path: &str) -> Result<Option<&'a str>, BadClaims> {
    match claim(claims, path) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(BadClaims::Malformed(path.to_owned())),
    }
}

fn id(claims: &Map<String, Value>, path: &str) -> Result<Option<[u8; 16]>, BadClaims> {
    match text(claims, path)? {
        None => Ok(None),
        Some(text) => match parse_context_id(Some(text.as_bytes())) {
            Ok(Some(id)) => Ok(Some(id)),
            _ => Err(BadClaims::Malformed(path.to_owned())),
        },
    }
}

/// Checks the registered claims at `now` (seconds since the epoch) and reads the context.
/// The tenant claim is required: a verified context without a tenant would be no context.
pub fn check(claims: &Map<String, Value>, policy: &Policy, now: i64) -> Result<TokenContext, BadClaims> {
    let expires_at = date(claims, "exp")?.ok_or_else(|| BadClaims::Missing("exp".to_owned()))?;
    if now >= expires_at.saturating_add(policy.leeway) {
        return Err(BadClaims::Expired);
    }
    if let Some(not_before) = date(claims, "nbf")? {
        if now < not_before.saturating_sub(policy.leeway) {
            return Err(BadClaims::NotYetValid);
        }
    }
    if text(claims, "iss")? != Some(policy.issuer.as_str()) {
        return Err(BadClaims::WrongIssuer);
    }
    let audience_matches = match claims.get("aud") {
        Some(Value::String(aud)) => *aud == policy.audience,
        Some(Value::Array(auds)) => auds.iter().any(|aud| aud.as_str() == Some(policy.audience.as_str())),
        _ => false,
    };
    if !audience_matches {
        return Err(BadClaims::WrongAudience);
    }
    let tenant = id(claims, &policy.tenant_claim)?.ok_or_else(|| BadClaims::Missing(policy.tenant_claim.clone()))?;
    Ok(TokenContext {
        tenant: Some(tenant),
        actor: id(claims, &policy.actor_claim)?,
        impersonator: id(claims, &policy.impersonator_claim)?,
        request_id: text(claims, &policy.request_id_claim)?.map(str::to_owned),
        expires_at,
        token_id: text(claims, "jti")?.map(str::to_owned),
        subject: text(claims, "sub")?.map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TENANT: &str = "00000000-0000-4000-8000-00000000000a";

    fn policy() -> Policy {
        Policy {
            issuer: "https://id.test/".into(),
            audience: "api".into(),
            leeway: 30,
            tenant_claim: "tenant_id".into(),
            actor_claim: "sub".into(),
            impersonator_claim: "act.sub".into(),
            request_id_claim: "jti".into(),
        }
    }

    fn claims(extra: Value) -> Map<String, Value> {
        let mut claims = json!({"iss": "https://id.test/", "aud": "api", "exp": 1_000, "tenant_id": TENANT});
        for (key, value) in extra.as_object().expect("an object") {
            if value.is_null() {
                claims.as_object_mut().unwrap().remove(key);
            } else {
                claims[key] = value.clone();
            }
        }
        claims.as_object().unwrap().clone()
    }

    #[test]
    fn a_valid_token_gives_its_context() {
        let context = check(
            &claims(json!({"sub": TENANT, "act": {"sub": TENANT}, "jti": "j-1", "nbf": 900})),
            &policy(),
            950,
        )
        .unwrap();
        assert_eq!(context.tenant, Some([0, 0, 0, 0, 0, 0, 0x40, 0, 0x80, 0, 0, 0, 0, 0, 0, 0x0a]));
        assert_eq!(context.actor, context.tenant);
        assert_eq!(context.impersonator, context.tenant);
        assert_eq!((context.request_id.as_deref(), context.token_id.as_deref()), (Some("j-1"), Some("j-1")));
        assert_eq!(context.expires_at, 1_000);
    }

    #[test]
    fn time_is_checked_with_the_leeway() {
        assert!(check(&claims(json!({})), &policy(), 1_029).is_ok());
        assert_eq!(check(&claims(json!({})), &policy(), 1_030), Err(BadClaims::Expired));
        assert_eq!(check(&claims(json!({"nbf": 2_000})), &policy(), 1_000 - 100), Err(BadClaims::NotYetValid));
        assert!(check(&claims(json!({"exp": 5_000, "nbf": 1_020})), &policy(), 1_000).is_ok());
        assert_eq!(check(&claims(json!({"exp": null})), &policy(), 0), Err(BadClaims::Missing("exp".into())));
        assert_eq!(check(&claims(json!({"exp": "soon"})), &policy(), 0), Err(BadClaims::Malformed("exp".into())));
        assert_eq!(check(&claims(json!({"exp": 1e300})), &policy(), 0), Err(BadClaims::Malformed("exp".into())));
    }

    #[test]
    fn issuer_audience_and_claims_must_match() {
        assert_eq!(check(&claims(json!({"iss": "https://evil.test/"})), &policy(), 0), Err(BadClaims::WrongIssuer));
        assert_eq!(check(&claims(json!({"iss": 7})), &policy(), 0), Err(BadClaims::Malformed("iss".into())));
        assert_eq!(check(&claims(json!({"aud": ["x", "y"]})), &policy(), 0), Err(BadClaims::WrongAudience));
        assert!(check(&claims(json!({"aud": ["x", "api"]})), &policy(), 0).is_ok());
        assert_eq!(check(&claims(json!({"aud": null})), &policy(), 0), Err(BadClaims::WrongAudience));
        assert_eq!(check(&claims(json!({"tenant_id": null})), &policy(), 0), Err(BadClaims::Missing("tenant_id".into())));
        assert_eq!(check(&claims(json!({"tenant_id": "clinic-a"})), &policy(), 0), Err(BadClaims::Malformed("tenant_id".into())));
        assert_eq!(check(&claims(json!({"sub": "auth0|1"})), &policy(), 0), Err(BadClaims::Malformed("sub".into())));
        assert_eq!(check(&claims(json!({"act": "x"})), &policy(), 0).map(|c| c.impersonator), Ok(None));
    }
}
