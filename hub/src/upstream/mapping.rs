//! From IdP claims to a Tether [`Identity`]: pure functions, no I/O.
//!
//! - username: `username_claim`, else `email` (unless `email_verified` is `false`), else
//!   `sub`; then `username_prefix`. A username starting with `system:` (before or after the
//!   prefix) fails the login with [`UpstreamError::SystemIdentity`].
//! - groups: `groups_claim` as an array of strings (non-strings are ignored) or a single
//!   string; absent means no groups. Kept if they match one of `groups_filter` (`*` only;
//!   empty keeps all), then prefixed. A `system:` group (before or after the prefix) is
//!   dropped with a warning. The result is sorted and deduplicated.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::config::{SYSTEM_PREFIX, UpstreamConfig};
use super::{Identity, UpstreamError};

/// The `sub` claim.
pub const CLAIM_SUB: &str = "sub";
/// The `email` claim, the first username fallback.
pub const CLAIM_EMAIL: &str = "email";
/// The `email_verified` claim: an email explicitly unverified is not used as a fallback.
pub const CLAIM_EMAIL_VERIFIED: &str = "email_verified";

/// Maps merged id_token/userinfo claims to an [`Identity`].
pub fn map_identity(
    claims: &Map<String, Value>,
    config: &UpstreamConfig,
) -> Result<Identity, UpstreamError> {
    let subject = string_claim(claims, CLAIM_SUB)
        .ok_or_else(|| UpstreamError::MissingClaim(CLAIM_SUB.to_owned()))?
        .to_owned();
    let username = map_username(
        raw_username(claims, &config.username_claim)?,
        config.username_prefix.as_deref(),
    )?;
    let groups = map_groups(
        raw_groups(claims, &config.groups_claim),
        &config.groups_filter,
        config.groups_prefix.as_deref(),
    );
    Ok(Identity {
        subject,
        username,
        groups,
    })
}

/// The unprefixed username: `claim`, else `email` (unless unverified), else `sub`.
pub fn raw_username<'a>(
    claims: &'a Map<String, Value>,
    claim: &str,
) -> Result<&'a str, UpstreamError> {
    if let Some(name) = string_claim(claims, claim) {
        return Ok(name);
    }
    let email_unverified = claims.get(CLAIM_EMAIL_VERIFIED) == Some(&Value::Bool(false));
    if !email_unverified && let Some(email) = string_claim(claims, CLAIM_EMAIL) {
        return Ok(email);
    }
    string_claim(claims, CLAIM_SUB).ok_or_else(|| UpstreamError::MissingClaim(claim.to_owned()))
}

/// Prefixes `raw`; refuses a `system:` username before or after the prefix.
pub fn map_username(raw: &str, prefix: Option<&str>) -> Result<String, UpstreamError> {
    if raw.starts_with(SYSTEM_PREFIX) {
        return Err(UpstreamError::SystemIdentity(format!("username {raw:?}")));
    }
    let username = format!("{}{raw}", prefix.unwrap_or_default());
    if username.starts_with(SYSTEM_PREFIX) {
        return Err(UpstreamError::SystemIdentity(format!(
            "username {username:?}"
        )));
    }
    Ok(username)
}

/// The groups in `claim`: an array (strings kept, others ignored), one string, or nothing.
pub fn raw_groups<'a>(claims: &'a Map<String, Value>, claim: &str) -> Vec<&'a str> {
    match claims.get(claim) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .filter(|g| !g.is_empty())
            .collect(),
        Some(Value::String(group)) if !group.is_empty() => vec![group.as_str()],
        _ => Vec::new(),
    }
}

/// Filters by `patterns` (empty keeps all), prefixes, drops `system:` groups, sorts and
/// deduplicates.
pub fn map_groups<'a>(
    raw: impl IntoIterator<Item = &'a str>,
    patterns: &[String],
    prefix: Option<&str>,
) -> Vec<String> {
    let mut groups = BTreeSet::new();
    for group in raw {
        if !patterns.is_empty() && !patterns.iter().any(|p| glob_match(p, group)) {
            continue;
        }
        let mapped = format!("{}{group}", prefix.unwrap_or_default());
        if group.starts_with(SYSTEM_PREFIX) || mapped.starts_with(SYSTEM_PREFIX) {
            tracing::warn!(group = %group, "dropping a `system:` group from the upstream IdP");
            continue;
        }
        groups.insert(mapped);
    }
    groups.into_iter().collect()
}

/// Whether `text` matches `pattern`, where `*` matches any run of characters (also empty)
/// and every other character matches itself.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    // Where the last `*` was, and the text position it is currently assumed to cover up to.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

/// A non-empty string claim.
fn string_claim<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    claims
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}
