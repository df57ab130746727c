//! Who may write what: scopes, id patterns (namespace ownership) and the stored form of API
//! tokens. No secrets live here: a token's secret is shown once and only its hash is kept.

use std::fmt;
use std::str::FromStr;

use crate::time::Timestamp;

/// What a credential may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Read entries, status and the change feed (needed only with `--auth-reads`).
    ServersRead,
    /// Register, replace, delete, heartbeat and check entries whose ids it owns.
    ServersWrite,
    /// Set, delete and roll back routing policies of services it owns.
    RoutingWrite,
    /// Everything, on every id.
    Admin,
}

impl Scope {
    /// Every scope, in the order they are listed.
    pub const ALL: [Scope; 4] = [
        Scope::ServersRead,
        Scope::ServersWrite,
        Scope::RoutingWrite,
        Scope::Admin,
    ];

    /// The scope's name (`servers:write`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ServersRead => "servers:read",
            Self::ServersWrite => "servers:write",
            Self::RoutingWrite => "routing:write",
            Self::Admin => "admin",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s.trim())
            .ok_or_else(|| {
                format!(
                    "unknown scope {s:?}; expected one of servers:read, servers:write, \
                     routing:write, admin"
                )
            })
    }
}

/// Parses a comma-separated scope list (`servers:write,routing:write`), without duplicates.
pub fn parse_scopes(s: &str) -> Result<Vec<Scope>, String> {
    let mut scopes = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let scope: Scope = part.parse()?;
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    if scopes.is_empty() {
        return Err("give at least one scope".into());
    }
    scopes.sort();
    Ok(scopes)
}

/// An id pattern: an id slug in which `*` stands for any run of characters (`payments-*`,
/// `*-staging`, `*`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdPattern(String);

impl IdPattern {
    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `id` matches.
    pub fn matches(&self, id: &str) -> bool {
        glob_match(&self.0, id)
    }
}

/// Whether `s` matches `pattern`, in which `*` stands for any run of characters (and nothing
/// else is special).
pub fn glob_match(pattern: &str, s: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == s;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !s.starts_with(first) || s.len() < first.len() + last.len() || !s.ends_with(last) {
        return false;
    }
    let mut rest = &s[first.len()..s.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

impl FromStr for IdPattern {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '*');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!(
                "{s:?} is not an id pattern: lowercase letters, digits, '-' and '*' (any run of \
                 characters), at most 64"
            ))
        }
    }
}

impl fmt::Display for IdPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses a comma-separated pattern list (`payments-*,billing`).
pub fn parse_id_patterns(s: &str) -> Result<Vec<IdPattern>, String> {
    let patterns: Vec<IdPattern> = s
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    if patterns.is_empty() {
        return Err("give at least one id pattern (`*` for every id)".into());
    }
    Ok(patterns)
}

/// A token as the registry stores it: everything but the secret, of which only a SHA-256
/// hash is kept.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRecord {
    /// Public id (`tok_…`), part of the token and shown in logs and `updatedBy`.
    pub id: String,
    /// Lowercase hex SHA-256 of the secret.
    pub secret_sha256: String,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// Which entry ids and services it may write.
    pub ids: Vec<IdPattern>,
    /// Who or what it is for.
    pub description: String,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it stops working, if ever.
    pub expires_at: Option<Timestamp>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
}

impl TokenRecord {
    /// Whether it may be used at `now`.
    pub fn is_active(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|t| now < t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_as_globs() {
        let cases = [
            ("payments-*", "payments-api", true),
            ("payments-*", "payments-", true),
            ("payments-*", "catalog", false),
            ("payments-*", "xpayments-api", false),
            ("*-staging", "catalog-staging", true),
            ("*-staging", "catalog-prod", false),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxc", false),
            ("ab*ba", "aba", false),
            ("*", "anything", true),
            ("catalog", "catalog", true),
            ("catalog", "catalog-2", false),
        ];
        for (pattern, id, want) in cases {
            let p: IdPattern = pattern.parse().expect("pattern");
            assert_eq!(p.matches(id), want, "{pattern} vs {id}");
        }
    }

    #[test]
    fn bad_patterns_and_scopes_are_refused() {
        for bad in ["", "Pay*", "a b", "../x", "a_b"] {
            assert!(bad.parse::<IdPattern>().is_err(), "{bad:?}");
        }
        assert!(parse_id_patterns(" , ").is_err());
        assert_eq!(
            parse_scopes("routing:write, servers:write,servers:write").expect("scopes"),
            [Scope::ServersWrite, Scope::RoutingWrite]
        );
        assert!(parse_scopes("servers:delete").is_err());
        assert!(parse_scopes("").is_err());
    }
}
