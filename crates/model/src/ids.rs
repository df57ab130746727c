//! Checked newtypes: a value of these types is valid by construction.
//!
//! Over 500 lines with its unit tests, which sit next to the code they check (131 of 539 lines).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A server id: a slug `^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$` (1–64 chars).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct ServerId(String);

impl ServerId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

impl FromStr for ServerId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let b = s.as_bytes();
        if b.is_empty() {
            return Err("must not be empty".into());
        }
        if b.len() > 64 {
            return Err(format!("must be at most 64 characters, got {}", b.len()));
        }
        let ok_inner = b.iter().all(|&c| is_lower_alnum(c) || c == b'-');
        let ok_ends = is_lower_alnum(b[0]) && is_lower_alnum(b[b.len() - 1]);
        if !(ok_inner && ok_ends) {
            return Err(
                "must be a slug: lowercase letters, digits and '-', starting and ending with a letter or digit"
                    .into(),
            );
        }
        Ok(Self(s.to_owned()))
    }
}

impl<'de> Deserialize<'de> for ServerId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A capability tag: `^[a-z0-9][a-z0-9._-]{0,63}$`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Tag(String);

impl Tag {
    /// The tag as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Tag {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let b = s.as_bytes();
        if b.is_empty() {
            return Err("must not be empty".into());
        }
        if b.len() > 64 {
            return Err(format!("must be at most 64 characters, got {}", b.len()));
        }
        let ok = is_lower_alnum(b[0])
            && b.iter()
                .all(|&c| is_lower_alnum(c) || matches!(c, b'.' | b'_' | b'-'));
        if !ok {
            return Err(
                "must start with a lowercase letter or digit and contain only lowercase letters, digits, '.', '_' and '-'"
                    .into(),
            );
        }
        Ok(Self(s.to_owned()))
    }
}

impl<'de> Deserialize<'de> for Tag {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A semantic version (semver 2.0): `1.2.3`, `2.0.0-rc.1`. Ranges and `latest` are not versions.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(semver::Version);

impl Version {
    /// The parsed version.
    pub fn semver(&self) -> &semver::Version {
        &self.0
    }
}

impl FromStr for Version {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        semver::Version::parse(s)
            .map(Self)
            .map_err(|e| format!("must be a semantic version such as 1.2.3 or 2.0.0-rc.1 ({e})"))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An absolute `http`/`https` URL without credentials or fragment, whose authority is a plain
/// `host[:port]` that every common URL parser reads alike. The text kept is the parser's
/// normalized form (scheme and host lowercased, default port dropped, path resolved and
/// escaped), without the `/` it adds to a URL that has no path (`http://host:8080` stays so),
/// so seed clients that build `${url}/mcp` get the URL they expect.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HttpUrl {
    text: String,
    parsed: url::Url,
}

impl HttpUrl {
    /// The URL as text, in its normalized form.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The parsed URL.
    pub fn url(&self) -> &url::Url {
        &self.parsed
    }
}

/// The authority of `s` (`scheme://authority/…`) as RFC 3986 reads it: up to the first `/`,
/// `?` or `#`. WHATWG parsers (and `url`) also end it at `\`, which is how
/// `http://10.0.0.5\@169.254.169.254/` reads as two different hosts.
/// Also whether anything follows it.
fn authority(s: &str) -> Result<(&str, bool), String> {
    let (_, rest) = s.split_once(':').ok_or("must be an absolute URL")?;
    let rest = rest
        .strip_prefix("//")
        .ok_or("must be of the form scheme://host[:port]/path")?;
    Ok(match rest.find(['/', '?', '#']) {
        Some(end) => (&rest[..end], true),
        None => (rest, false),
    })
}

/// Checks that `authority` is `host[:port]` with a DNS name, a dotted-quad IPv4 address or a
/// bracketed IPv6 address as host, nothing a parser could read two ways; `parsed` is what
/// the URL parser made of it.
fn check_authority(authority: &str, parsed: &url::Url) -> Result<(), String> {
    if authority.contains('@') {
        return Err("must not contain credentials or '@' before the host".into());
    }
    if authority.contains('\\') {
        return Err("must not contain '\\' in its host part".into());
    }
    let (host, port) = if authority.starts_with('[') {
        let end = authority
            .find(']')
            .ok_or("has an unclosed '[' in its host")?;
        let (host, rest) = authority.split_at(end + 1);
        match rest {
            "" => (host, None),
            _ => (
                host,
                Some(
                    rest.strip_prefix(':')
                        .ok_or("has junk after its IPv6 host")?,
                ),
            ),
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if let Some(port) = port
        && !(!port.is_empty()
            && port.len() <= 5
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u32>().is_ok_and(|p| p <= 65_535))
    {
        return Err(format!(
            "port must be a number from 0 to 65535, got {port:?}"
        ));
    }
    if host.is_empty() {
        return Err("must have a host".into());
    }
    match parsed.host() {
        Some(url::Host::Ipv6(_)) => {
            let inner = host.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
            if inner.is_none_or(|h| h.parse::<std::net::Ipv6Addr>().is_err()) {
                return Err(format!("host {host} is not a plain IPv6 address"));
            }
        }
        Some(url::Host::Ipv4(ip)) if host != ip.to_string() => {
            return Err(format!(
                "an IPv4 host must be written as four decimal numbers, as {ip}, not {host:?}"
            ));
        }
        Some(url::Host::Ipv4(_)) => {}
        _ => {
            let dns = host.strip_suffix('.').unwrap_or(host);
            let label_ok = |l: &str| {
                (1..=63).contains(&l.len())
                    // `_` is no DNS hostname character, but every parser reads it alike
                    // and container names (Docker Compose services) use it.
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            };
            if !dns.split('.').all(label_ok) {
                return Err(format!(
                    "host must be a DNS name (letters, digits, '-' and '_' in dot-separated \
                     labels) or an IP address, got {host:?}"
                ));
            }
        }
    }
    Ok(())
}

impl HttpUrl {
    /// Reads a URL an earlier version stored, when the authority was not checked: every other
    /// rule of [`FromStr`] holds, and the text is normalized the same way, so what is returned
    /// is what this parser reads (`http://10.0.0.5\@169.254.169.254/` reads back as
    /// `http://10.0.0.5/@169.254.169.254/`) and no stored entry becomes unreadable.
    pub fn from_stored(s: &str) -> Result<Self, String> {
        Self::parse(s, false)
    }

    fn parse(s: &str, strict: bool) -> Result<Self, String> {
        if s.len() > 2048 {
            return Err("must be at most 2048 characters".into());
        }
        // The URL parser drops or escapes them, so parsers read such text differently (and
        // PostgreSQL refuses U+0000).
        if s.chars().any(char::is_control) {
            return Err("must not contain control characters".into());
        }
        if s.trim() != s {
            return Err("must not have leading or trailing spaces".into());
        }
        let u = url::Url::parse(s).map_err(|e| format!("must be an absolute URL ({e})"))?;
        if !matches!(u.scheme(), "http" | "https") {
            return Err(format!(
                "scheme must be http or https, not {:?}",
                u.scheme()
            ));
        }
        if u.host_str().is_none_or(str::is_empty) {
            return Err("must have a host".into());
        }
        if !u.username().is_empty() || u.password().is_some() {
            return Err("must not contain credentials (user:password@)".into());
        }
        if u.fragment().is_some() {
            return Err("must not contain a fragment (#...)".into());
        }
        let bare = match authority(s) {
            Ok((authority, more)) => {
                if strict {
                    check_authority(authority, &u)?;
                }
                !more
            }
            Err(e) if strict => return Err(e),
            Err(_) => false,
        };
        // Nothing after the authority: no path was given, so none is added.
        let text = match u.as_str().strip_suffix('/') {
            Some(text) if bare => text.to_owned(),
            _ => u.as_str().to_owned(),
        };
        Ok(Self { text, parsed: u })
    }
}

impl FromStr for HttpUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::parse(s, true)
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for HttpUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for HttpUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// How a client authenticates to the server the entry describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum AuthType {
    /// No credentials.
    None,
    /// A bearer token the host obtains out of band.
    Bearer,
    /// OAuth 2.0; the token endpoint is in [`AuthSpec::token_endpoint`].
    Oauth2,
}

impl FromStr for AuthType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(Self::None),
            "bearer" => Ok(Self::Bearer),
            "oauth2" => Ok(Self::Oauth2),
            other => Err(format!(
                "must be one of \"none\", \"bearer\", \"oauth2\", not {other:?}"
            )),
        }
    }
}

impl AuthType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Bearer => "bearer",
            Self::Oauth2 => "oauth2",
        }
    }
}

/// The seed's `auth` object: `{type, tokenEndpoint?}`; `tokenEndpoint` exactly when `oauth2`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AuthSpec {
    /// The scheme.
    #[serde(rename = "type")]
    pub kind: AuthType,
    /// The OAuth 2.0 token endpoint (only for `oauth2`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub token_endpoint: Option<HttpUrl>,
}

impl Default for AuthSpec {
    fn default() -> Self {
        Self {
            kind: AuthType::None,
            token_endpoint: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_ids() {
        for ok in ["a", "a1", "payments-eu-1", &"a".repeat(64), "0"] {
            assert!(ok.parse::<ServerId>().is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "A",
            "a_b",
            "a.b",
            &"a".repeat(65),
            "é",
            "a b",
        ] {
            assert!(bad.parse::<ServerId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn tags() {
        for ok in ["products", "v1.2", "a_b-c", "0", &"t".repeat(64)] {
            assert!(ok.parse::<Tag>().is_ok(), "{ok}");
        }
        for bad in ["", ".a", "-a", "_a", "Prod", "a b", "a,b", &"t".repeat(65)] {
            assert!(bad.parse::<Tag>().is_err(), "{bad}");
        }
    }

    #[test]
    fn versions() {
        for ok in ["1.2.3", "2.0.0-rc.1", "0.0.1+build.5"] {
            assert!(ok.parse::<Version>().is_ok(), "{ok}");
        }
        for bad in ["latest", "^1.2", ">=1.0.0", "1.2", "v1.2.3", "1.2.3.4", ""] {
            assert!(bad.parse::<Version>().is_err(), "{bad}");
        }
    }

    #[test]
    fn urls() {
        for ok in ["http://127.0.0.1:8080", "https://mcp.example.com/base"] {
            let u: HttpUrl = ok.parse().expect(ok);
            assert_eq!(u.as_str(), ok, "already normalized");
        }
        for bad in [
            "ftp://x",
            "/relative",
            "http://user:pw@host",
            "http://host/#frag",
            "http://",
            "not a url",
            "http://h/a\0b",
            "http://h/?q=\r\nX: y",
            "http://h/\t",
        ] {
            assert!(bad.parse::<HttpUrl>().is_err(), "{bad}");
        }
    }

    /// Issue #25: authorities that parsers read differently are refused (the `url` crate reads
    /// `http://10.0.0.5\@169.254.169.254/` as host 10.0.0.5, RFC 3986 parsers as
    /// 169.254.169.254); what is accepted is kept in its normalized form.
    #[test]
    fn url_authorities_are_plain_and_urls_normalized() {
        let refused: [(&str, &str); 22] = [
            ("http://10.0.0.5\\@169.254.169.254/", "@"),
            ("http://10.0.0.5\\169.254.169.254/", "'\\'"),
            ("http://h\\x/", "'\\'"),
            ("http://a@169.254.169.254/", "@"),
            ("http://@h/", "@"),
            ("http:\\\\169.254.169.254/", "scheme://"),
            ("http:/169.254.169.254/", "scheme://"),
            ("http:169.254.169.254/", "scheme://"),
            ("http:///169.254.169.254/", "host"),
            ("http://0x7f.1/", "four decimal"),
            ("http://127.1/", "four decimal"),
            ("http://2130706433/", "four decimal"),
            ("http://0177.0.0.1/", "four decimal"),
            ("http://%31%32%37.0.0.1/", "four decimal"),
            ("http://ex%61mple.com/", "DNS name"),
            ("http://exämple.com/", "DNS name"),
            ("http://a\u{3002}b/", "DNS name"),
            ("http://-a.example/", "DNS name"),
            ("http://a..b/", "DNS name"),
            ("http://h:/", "port"),
            ("http://h:99999/", "port"),
            ("http://[fe80::1%25eth0]/", "IPv6"),
        ];
        for (url, why) in refused {
            match url.parse::<HttpUrl>() {
                Ok(u) => panic!("{url:?} accepted as {}", u.as_str()),
                Err(e) => assert!(e.contains(why), "{url:?}: {e}"),
            }
        }
        let normalized = [
            ("http://127.0.0.1:3001", "http://127.0.0.1:3001"),
            ("http://127.0.0.1:3001/", "http://127.0.0.1:3001/"),
            ("HTTP://Mcp.Example.COM:80", "http://mcp.example.com"),
            ("https://h:443/a/./b/../c", "https://h/a/c"),
            ("http://h/a b?q=<x>", "http://h/a%20b?q=%3Cx%3E"),
            ("http://h/a\\b", "http://h/a/b"),
            ("http://h?x=1", "http://h/?x=1"),
            ("http://h:0081/x", "http://h:81/x"),
            ("http://[0:0::1]:8080", "http://[::1]:8080"),
            ("http://[::ffff:10.0.0.1]/", "http://[::ffff:a00:1]/"),
            ("http://h./mcp", "http://h./mcp"),
            ("http://mcp_server:8080", "http://mcp_server:8080"),
            ("http://h/@x/y:z", "http://h/@x/y:z"),
        ];
        // Rows stored before the check still read, normalized to what this parser reads.
        let stored = HttpUrl::from_stored("http://10.0.0.5\\@169.254.169.254/").expect("stored");
        assert_eq!(stored.as_str(), "http://10.0.0.5/@169.254.169.254/");
        assert!(
            stored.as_str().parse::<HttpUrl>().is_ok(),
            "its normal form is plain"
        );
        for (url, want) in normalized {
            let u: HttpUrl = url.parse().unwrap_or_else(|e| panic!("{url:?}: {e}"));
            assert_eq!(u.as_str(), want, "{url:?}");
            let again: HttpUrl = want.parse().expect("normalized form parses");
            assert_eq!(again, u, "normalizing {url:?} again changes it");
        }
    }
}
