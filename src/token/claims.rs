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
