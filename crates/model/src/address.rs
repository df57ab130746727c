//! Which addresses mcp-fleet may connect to on an entry's behalf: a deny/allow CIDR policy,
//! checked by the registry (registration, probes, alerts), the discovery library and the gateway.
//!
//! Clients choose the URLs mcp-fleet fetches, so without it they could make the registry or the
//! gateway reach places they cannot (cloud metadata at 169.254.169.254, loopback services).
//! IPv6 forms that carry an IPv4 address (IPv4-mapped and -compatible, NAT64, 6to4, Teredo) are
//! checked as that IPv4 address too, since the packets end up there.
//!
//! Over 500 lines with its unit tests, which sit next to the code they check (345 of 728 lines).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};
use url::{Host, Url};

const fn v4(a: u8, b: u8, c: u8, d: u8, len: u8) -> IpNet {
    IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), len))
}

const fn v6(first: u16, second: u16, len: u8) -> IpNet {
    IpNet::V6(Ipv6Net::new_assert(
        Ipv6Addr::new(first, second, 0, 0, 0, 0, 0, 0),
        len,
    ))
}

/// Ranges refused unless configured otherwise: link-local (cloud metadata endpoints live there),
/// "this network", multicast, broadcast and the unspecified IPv6 address. Loopback and private
/// ranges are absent on purpose: fleets live there (see [`PolicyMode::Strict`]).
pub const DEFAULT_DENY: [IpNet; 7] = [
    v4(169, 254, 0, 0, 16),
    v6(0xfe80, 0, 10),
    v4(0, 0, 0, 0, 8),
    v4(224, 0, 0, 0, 4),
    v6(0xff00, 0, 8),
    v4(255, 255, 255, 255, 32),
    IpNet::V6(Ipv6Net::new_assert(Ipv6Addr::UNSPECIFIED, 128)),
];

/// What [`PolicyMode::Strict`] denies on top of [`DEFAULT_DENY`]: loopback, private, shared
/// (carrier-grade NAT), benchmarking, IETF-reserved and unique-local ranges.
pub const STRICT_DENY: [IpNet; 11] = [
    v4(127, 0, 0, 0, 8),
    v4(10, 0, 0, 0, 8),
    v4(172, 16, 0, 0, 12),
    v4(192, 168, 0, 0, 16),
    v4(100, 64, 0, 0, 10),
    v4(198, 18, 0, 0, 15),
    v4(192, 0, 0, 0, 24),
    v4(240, 0, 0, 0, 4),
    IpNet::V6(Ipv6Net::new_assert(Ipv6Addr::LOCALHOST, 128)),
    v6(0xfc00, 0, 7),
    v6(0xfec0, 0, 10),
];

/// Which ranges a policy starts from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum PolicyMode {
    /// Only link-local (cloud metadata), `0.0.0.0/8`, multicast, broadcast and `::` are denied:
    /// loopback and private ranges are allowed, for a fleet on a private network.
    #[default]
    Default,
    /// Loopback and private ranges are denied too ([`STRICT_DENY`]), except what the allowed
    /// ranges name: for registries that accept registrations from less trusted teams.
    Strict,
}

impl fmt::Display for PolicyMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Default => "default",
            Self::Strict => "strict",
        })
    }
}

impl FromStr for PolicyMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "default" => Ok(Self::Default),
            "strict" => Ok(Self::Strict),
            _ => Err(format!(
                "{s:?} is not a policy (expected default or strict)"
            )),
        }
    }
}

/// Which addresses may be connected to: denied ranges, and allowed ranges that carve exceptions
/// out of them (the more specific range wins). IPv4-mapped IPv6 ranges are stored in their IPv4
/// form, as addresses are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressPolicy {
    mode: PolicyMode,
    deny: Vec<IpNet>,
    allow: Vec<IpNet>,
}

impl AddressPolicy {
    /// `mode`'s denied ranges plus `extra_deny`, with `allow` exceptions (`--probe-policy`,
    /// `--probe-deny-cidr`, `--probe-allow-cidr`).
    pub fn new(mode: PolicyMode, extra_deny: Vec<IpNet>, allow: Vec<IpNet>) -> Self {
        let strict: &[IpNet] = match mode {
            PolicyMode::Default => &[],
            PolicyMode::Strict => &STRICT_DENY,
        };
        let mut policy = Self {
            mode,
            deny: Vec::new(),
            allow: Vec::new(),
        };
        policy.add(
            DEFAULT_DENY
                .into_iter()
                .chain(strict.iter().copied())
                .chain(extra_deny),
            allow,
        );
        policy
    }

    fn add(
        &mut self,
        deny: impl IntoIterator<Item = IpNet>,
        allow: impl IntoIterator<Item = IpNet>,
    ) {
        for net in deny.into_iter().map(canonical_net) {
            if !self.deny.contains(&net) {
                self.deny.push(net);
            }
        }
        for net in allow.into_iter().map(canonical_net) {
            if !self.allow.contains(&net) {
                self.allow.push(net);
            }
        }
    }

    /// This policy with `other`'s denied and allowed ranges added (strict if either is): how a
    /// gateway adds its own flags to the registry's policy.
    pub fn merged(mut self, other: &AddressPolicy) -> Self {
        if other.mode == PolicyMode::Strict {
            self.mode = PolicyMode::Strict;
        }
        self.add(other.deny.iter().copied(), other.allow.iter().copied());
        self
    }

    /// The mode the denied ranges started from.
    pub fn mode(&self) -> PolicyMode {
        self.mode
    }

    /// The denied ranges, defaults included.
    pub fn deny(&self) -> &[IpNet] {
        &self.deny
    }

    /// The allowed exceptions.
    pub fn allow(&self) -> &[IpNet] {
        &self.allow
    }

    /// Refuses `ip` when the most specific denied range holding it, or holding the IPv4 address
    /// it embeds, is not overridden by an allowed range at least as specific.
    pub fn check(&self, ip: IpAddr) -> Result<(), Refused> {
        let ip = ip.to_canonical();
        self.check_one(ip).map_err(|range| Refused {
            addr: ip,
            embedded: None,
            range,
        })?;
        if let IpAddr::V6(v6) = ip {
            for inner in embedded_ipv4(v6) {
                self.check_one(IpAddr::V4(inner)).map_err(|range| Refused {
                    addr: ip,
                    embedded: Some(inner),
                    range,
                })?;
            }
        }
        Ok(())
    }

    fn check_one(&self, ip: IpAddr) -> Result<(), IpNet> {
        let Some(denied) = self
            .deny
            .iter()
            .filter(|net| net.contains(&ip))
            .max_by_key(|net| net.prefix_len())
        else {
            return Ok(());
        };
        let overridden = self
            .allow
            .iter()
            .any(|net| net.contains(&ip) && net.prefix_len() >= denied.prefix_len());
        if overridden { Ok(()) } else { Err(*denied) }
    }

    /// Checks a URL's host without resolving it: literal IPs (which HTTP clients connect to
    /// without asking a resolver), and `localhost` names (RFC 6761: always loopback). Other names
    /// pass here and must be checked when they are resolved.
    pub fn check_url(&self, url: &Url) -> Result<(), Refused> {
        match url.host() {
            Some(Host::Ipv4(ip)) => self.check(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => self.check(IpAddr::V6(ip)),
            Some(Host::Domain(name)) if is_localhost(name) => {
                self.check(IpAddr::V4(Ipv4Addr::LOCALHOST))?;
                self.check(IpAddr::V6(Ipv6Addr::LOCALHOST))
            }
            Some(Host::Domain(_)) | None => Ok(()),
        }
    }

    /// The policy as the registry publishes it (`GET /address-policy`).
    pub fn document(&self) -> AddressPolicyDocument {
        AddressPolicyDocument {
            mode: self.mode,
            deny: self.deny.iter().map(ToString::to_string).collect(),
            allow: self.allow.iter().map(ToString::to_string).collect(),
        }
    }
}

impl Default for AddressPolicy {
    /// The default deny list, no exceptions.
    fn default() -> Self {
        Self::new(PolicyMode::Default, Vec::new(), Vec::new())
    }
}

impl fmt::Display for AddressPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |nets: &[IpNet]| {
            nets.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        write!(f, "{} policy, denying {}", self.mode, join(&self.deny))?;
        if !self.allow.is_empty() {
            write!(f, "; allowing {}", join(&self.allow))?;
        }
        Ok(())
    }
}

/// The effective address policy on the wire: every denied range (defaults included) and every
/// allowed exception, as CIDR text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AddressPolicyDocument {
    /// The mode the denied ranges start from.
    pub mode: PolicyMode,
    /// Denied ranges, e.g. `169.254.0.0/16`.
    pub deny: Vec<String>,
    /// Exceptions inside denied ranges (the more specific range wins).
    pub allow: Vec<String>,
}

impl TryFrom<AddressPolicyDocument> for AddressPolicy {
    type Error = String;

    fn try_from(doc: AddressPolicyDocument) -> Result<Self, String> {
        let parse = |list: &[String]| -> Result<Vec<IpNet>, String> {
            list.iter().map(|s| parse_cidr(s)).collect()
        };
        Ok(Self::new(doc.mode, parse(&doc.deny)?, parse(&doc.allow)?))
    }
}

/// An address the policy refuses, and the denied range that refuses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The refused address, IPv4-mapped forms shown as IPv4.
    pub addr: IpAddr,
    /// The IPv4 address `addr` embeds, when that is what the range holds.
    pub embedded: Option<Ipv4Addr>,
    /// The most specific denied range holding it.
    pub range: IpNet,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.embedded {
            Some(inner) => write!(
                f,
                "address {} (embedding {inner}) is in the denied range {}",
                self.addr, self.range
            ),
            None => write!(
                f,
                "address {} is in the denied range {}",
                self.addr, self.range
            ),
        }
    }
}

impl std::error::Error for Refused {}

/// `localhost` and `*.localhost`, which resolve to loopback (RFC 6761).
fn is_localhost(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

/// The IPv4 addresses an IPv6 address carries, where packets to it end up: IPv4-compatible
/// (`::a.b.c.d`, but not `::` or `::1`), NAT64 (`64:ff9b::/96`; in `64:ff9b:1::/48` both the
/// /96 and the /48 layouts of RFC 6052), 6to4 (`2002::/16`) and Teredo's client (`2001::/32`,
/// last 32 bits inverted). IPv4-mapped addresses are canonicalised before this is asked.
pub fn embedded_ipv4(ip: Ipv6Addr) -> Vec<Ipv4Addr> {
    let s = ip.segments();
    let bits = u128::from(ip);
    let last32 = Ipv4Addr::from((bits & 0xffff_ffff) as u32);
    let mut found = Vec::new();
    if s[..6] == [0; 6] && bits > 1 {
        found.push(last32);
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        found.push(last32);
    }
    if s[..3] == [0x64, 0xff9b, 1] {
        // RFC 6052 with a /48 prefix: 16 bits, the reserved octet, then 16 more. Which layout
        // an operator uses is not in the address: an all-zero candidate is the other one.
        let [a, b] = s[3].to_be_bytes();
        let [_, c] = s[4].to_be_bytes();
        let [d, _] = s[5].to_be_bytes();
        let layouts = [last32, Ipv4Addr::new(a, b, c, d)];
        found.extend(layouts.into_iter().filter(|v4| !v4.is_unspecified()));
    }
    if s[0] == 0x2002 {
        found.push(Ipv4Addr::from((u32::from(s[1]) << 16) | u32::from(s[2])));
    }
    if s[0] == 0x2001 && s[1] == 0 {
        found.push(Ipv4Addr::from(!((bits & 0xffff_ffff) as u32)));
    }
    found
}

/// Parses a `--probe-deny-cidr` / `--probe-allow-cidr` value: a CIDR range, or a bare address
/// meaning just that address (/32 or /128).
pub fn parse_cidr(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    if s.contains('/') {
        let net: IpNet = s.parse().map_err(|_| {
            format!("{s:?} is not a CIDR range (expected e.g. 10.0.0.0/8 or fd00::/8)")
        })?;
        if net.trunc() != net {
            return Err(format!(
                "{s:?} has host bits set; did you mean {}?",
                net.trunc()
            ));
        }
        Ok(net)
    } else {
        let ip: IpAddr = s.parse().map_err(|_| {
            format!(
                "{s:?} is not an IP address or CIDR range (expected e.g. 10.0.0.0/8 or 192.0.2.7)"
            )
        })?;
        Ok(IpNet::from(ip))
    }
}

/// `::ffff:a.b.c.d/(96+n)` becomes `a.b.c.d/n`, because addresses are canonicalised before
/// they are checked and an IPv6 range would never match an IPv4 address.
fn canonical_net(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => IpNet::V4(Ipv4Net::new_assert(v4, v6.prefix_len() - 96)),
            None => net,
        },
        _ => net,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        parse_cidr(s).expect("test CIDR parses")
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address parses")
    }

    fn policy(deny: &[&str], allow: &[&str]) -> AddressPolicy {
        AddressPolicy::new(
            PolicyMode::Default,
            deny.iter().map(|s| net(s)).collect(),
            allow.iter().map(|s| net(s)).collect(),
        )
    }

    /// One row per address: the range expected to refuse it, or `None` for allowed.
    fn assert_table(policy: &AddressPolicy, rows: &[(&str, Option<&str>)]) {
        for &(addr, denied_by) in rows {
            let got = policy.check(ip(addr)).err().map(|refused| refused.range);
            assert_eq!(got, denied_by.map(net), "checking {addr}");
        }
    }

    #[test]
    fn defaults_deny_metadata_link_local_multicast_and_unspecified() {
        assert_table(
            &AddressPolicy::default(),
            &[
                ("169.254.169.254", Some("169.254.0.0/16")),
                ("::ffff:169.254.169.254", Some("169.254.0.0/16")),
                ("fe80::1", Some("fe80::/10")),
                ("0.0.0.0", Some("0.0.0.0/8")),
                ("::ffff:0.0.0.0", Some("0.0.0.0/8")),
                ("224.0.0.1", Some("224.0.0.0/4")),
                ("239.255.255.250", Some("224.0.0.0/4")),
                ("ff02::1", Some("ff00::/8")),
                ("255.255.255.255", Some("255.255.255.255/32")),
                ("::", Some("::/128")),
                ("127.0.0.1", None),
                ("10.1.2.3", None),
                ("192.168.1.1", None),
                ("::ffff:10.1.2.3", None),
                ("::1", None),
                ("fd00::1", None),
                ("93.184.216.34", None),
            ],
        );
    }

    #[test]
    fn ipv6_forms_embedding_a_denied_ipv4_address_are_denied() {
        let default = AddressPolicy::default();
        assert_table(
            &default,
            &[
                // IPv4-compatible.
                ("::169.254.169.254", Some("169.254.0.0/16")),
                ("::a9fe:a9fe", Some("169.254.0.0/16")),
                // NAT64, well-known and local-use prefixes (/96 and /48 layouts).
                ("64:ff9b::169.254.169.254", Some("169.254.0.0/16")),
                ("64:ff9b:1::169.254.169.254", Some("169.254.0.0/16")),
                ("64:ff9b:1:a9fe:a9:fe00::", Some("169.254.0.0/16")),
                // 6to4.
                ("2002:a9fe:a9fe::", Some("169.254.0.0/16")),
                ("2002:a9fe:a9fe:1::5", Some("169.254.0.0/16")),
                // Teredo: the client address is the last 32 bits inverted.
                (
                    "2001:0:4136:e378:8000:63bf:5601:5601",
                    Some("169.254.0.0/16"),
                ),
                ("2002:e000:0001::", Some("224.0.0.0/4")),
                // Allowed IPv4 inside: allowed.
                ("::10.1.2.3", None),
                ("64:ff9b::93.184.216.34", None),
                ("2002:5db8:d822::", None),
                ("2001:0:4136:e378:8000:63bf:a247:27dd", None),
                // Not embedding forms.
                ("::1", None),
                ("2001:db8::a9fe:a9fe", None),
                ("64:ff9c::a9fe:a9fe", None),
            ],
        );
        let refused = default
            .check(ip("64:ff9b::169.254.169.254"))
            .expect_err("NAT64 of metadata is denied");
        assert_eq!(
            refused.to_string(),
            "address 64:ff9b::a9fe:a9fe (embedding 169.254.169.254) is in the denied range \
             169.254.0.0/16"
        );
        let loopback = policy(&["127.0.0.0/8"], &[]);
        assert_table(
            &loopback,
            &[
                ("::127.0.0.1", Some("127.0.0.0/8")),
                ("64:ff9b::7f00:1", Some("127.0.0.0/8")),
                ("2002:7f00:1::", Some("127.0.0.0/8")),
                ("2001::80ff:fffe", Some("127.0.0.0/8")),
            ],
        );
    }

    #[test]
    fn embedded_forms_of_urls_are_refused() {
        let default = AddressPolicy::default();
        let rows: &[(&str, bool)] = &[
            ("http://[::169.254.169.254]/", false),
            ("http://[64:ff9b::169.254.169.254]/", false),
            ("http://[2002:a9fe:a9fe::]/", false),
            ("http://[2001:0:4136:e378:8000:63bf:5601:5601]/", false),
            ("http://[::ffff:169.254.169.254]/", false),
            ("http://[::1]:8080/mcp", true),
        ];
        for &(url, allowed) in rows {
            let parsed = Url::parse(url).expect("test URL parses");
            assert_eq!(
                default.check_url(&parsed).is_ok(),
                allowed,
                "checking {url}"
            );
        }
    }

    #[test]
    fn refusal_names_the_address_and_range() {
        let refused = AddressPolicy::default()
            .check(ip("::ffff:169.254.169.254"))
            .expect_err("metadata address is denied");
        assert_eq!(
            refused.to_string(),
            "address 169.254.169.254 is in the denied range 169.254.0.0/16"
        );
    }

    #[test]
    fn narrower_allow_overrides_a_wider_deny_but_not_the_reverse() {
        let policy = policy(
            &["10.0.0.0/8", "10.9.9.0/24"],
            &["169.254.10.0/24", "10.9.0.0/16"],
        );
        assert_table(
            &policy,
            &[
                ("169.254.10.5", None),
                ("::ffff:169.254.10.5", None),
                ("169.254.169.254", Some("169.254.0.0/16")),
                ("10.9.1.1", None),
                // The /24 deny is more specific than the /16 allow.
                ("10.9.9.9", Some("10.9.9.0/24")),
                ("10.1.1.1", Some("10.0.0.0/8")),
            ],
        );
    }

    #[test]
    fn allow_of_the_same_range_lifts_a_default_deny() {
        let policy = policy(&[], &["169.254.0.0/16"]);
        assert_table(
            &policy,
            &[("169.254.169.254", None), ("fe80::1", Some("fe80::/10"))],
        );
    }

    #[test]
    fn extra_deny_of_loopback_denies_loopback() {
        let policy = policy(&["127.0.0.0/8", "::1"], &[]);
        assert_table(
            &policy,
            &[
                ("127.0.0.1", Some("127.0.0.0/8")),
                ("127.3.4.5", Some("127.0.0.0/8")),
                ("::ffff:127.0.0.1", Some("127.0.0.0/8")),
                ("::1", Some("::1/128")),
                ("10.1.2.3", None),
            ],
        );
    }

    #[test]
    fn ipv4_mapped_ranges_apply_to_ipv4_addresses() {
        let policy = policy(&["::ffff:10.0.0.0/104"], &[]);
        assert_table(
            &policy,
            &[
                ("10.1.2.3", Some("10.0.0.0/8")),
                ("::ffff:10.1.2.3", Some("10.0.0.0/8")),
            ],
        );
    }

    #[test]
    fn strict_denies_loopback_and_private_ranges_except_what_is_allowed() {
        let strict = AddressPolicy::new(PolicyMode::Strict, Vec::new(), Vec::new());
        assert_table(
            &strict,
            &[
                ("127.0.0.1", Some("127.0.0.0/8")),
                ("127.9.9.9", Some("127.0.0.0/8")),
                ("10.1.2.3", Some("10.0.0.0/8")),
                ("172.16.0.1", Some("172.16.0.0/12")),
                ("172.31.255.255", Some("172.16.0.0/12")),
                ("192.168.1.1", Some("192.168.0.0/16")),
                ("100.64.0.1", Some("100.64.0.0/10")),
                ("198.18.0.1", Some("198.18.0.0/15")),
                ("::1", Some("::1/128")),
                ("fd00::1", Some("fc00::/7")),
                ("::ffff:10.1.2.3", Some("10.0.0.0/8")),
                ("::10.1.2.3", Some("10.0.0.0/8")),
                ("64:ff9b::c0a8:101", Some("192.168.0.0/16")),
                ("169.254.169.254", Some("169.254.0.0/16")),
                ("172.32.0.1", None),
                ("93.184.216.34", None),
                ("2606:4700::1111", None),
            ],
        );
        let allowed = AddressPolicy::new(
            PolicyMode::Strict,
            Vec::new(),
            vec![net("10.20.0.0/16"), net("127.0.0.1")],
        );
        assert_table(
            &allowed,
            &[
                ("10.20.3.4", None),
                ("10.21.3.4", Some("10.0.0.0/8")),
                ("127.0.0.1", None),
                ("127.0.0.2", Some("127.0.0.0/8")),
                ("::1", Some("::1/128")),
            ],
        );
        let url = Url::parse("http://localhost:4751/").expect("URL parses");
        let refused = strict.check_url(&url).expect_err("localhost is loopback");
        assert_eq!(refused.range, net("127.0.0.0/8"));
        assert!(AddressPolicy::default().check_url(&url).is_ok());
    }

    #[test]
    fn check_url_checks_literal_hosts_and_localhost_names_only() {
        let policy = policy(&["127.0.0.1", "::1"], &[]);
        let rows: &[(&str, bool)] = &[
            ("http://169.254.169.254/latest/meta-data", false),
            ("http://[::ffff:169.254.169.254]/", false),
            ("http://[fe80::1]:8080/mcp", false),
            // The URL parser normalises these spellings to 169.254.169.254.
            ("http://2852039166/", false),
            ("http://0xa9.0xfe.0xa9.0xfe/", false),
            ("http://0.0.0.0:8080/", false),
            ("http://127.0.0.1:8080/mcp", false),
            ("http://[::1]:8080/mcp", false),
            ("http://localhost:4751", false),
            ("http://api.localhost./", false),
            ("http://127.0.0.2:8080/mcp", true),
            ("http://10.0.0.5/health", true),
            // Other names are checked when they are resolved.
            ("http://metadata.google.internal/", true),
            ("http://localhost.example/", true),
        ];
        for &(url, allowed) in rows {
            let parsed = Url::parse(url).expect("test URL parses");
            assert_eq!(policy.check_url(&parsed).is_ok(), allowed, "checking {url}");
        }
    }

    #[test]
    fn merged_policies_deny_what_either_denies() {
        let registry = AddressPolicy::new(PolicyMode::Default, vec![net("127.0.0.1")], Vec::new());
        let gateway = AddressPolicy::new(
            PolicyMode::Default,
            vec![net("10.0.0.0/8")],
            vec![net("10.1.0.0/16")],
        );
        let merged = registry.merged(&gateway);
        assert_table(
            &merged,
            &[
                ("127.0.0.1", Some("127.0.0.1/32")),
                ("10.2.0.1", Some("10.0.0.0/8")),
                ("10.1.0.1", None),
                ("169.254.169.254", Some("169.254.0.0/16")),
            ],
        );
        assert_eq!(merged.deny().len(), DEFAULT_DENY.len() + 2);
    }

    #[test]
    fn documents_round_trip() {
        let strict = AddressPolicy::new(
            PolicyMode::Strict,
            vec![net("203.0.113.0/24")],
            vec![net("10.1.0.0/16")],
        );
        let doc = strict.document();
        let json = serde_json::to_value(&doc).expect("serializes");
        assert_eq!(json["mode"], "strict");
        assert!(
            json["deny"]
                .as_array()
                .expect("list")
                .iter()
                .any(|v| v == "127.0.0.0/8")
        );
        let back: AddressPolicyDocument = serde_json::from_value(json).expect("parses");
        assert_eq!(AddressPolicy::try_from(back), Ok(strict));
        let bad = AddressPolicyDocument {
            mode: PolicyMode::Default,
            deny: vec!["nope".into()],
            allow: Vec::new(),
        };
        assert!(AddressPolicy::try_from(bad).is_err());
    }

    #[test]
    fn parse_cidr_accepts_ranges_and_bare_addresses() {
        let ok: &[(&str, &str)] = &[
            ("10.0.0.0/8", "10.0.0.0/8"),
            (" fe80::/10 ", "fe80::/10"),
            ("169.254.169.254", "169.254.169.254/32"),
            ("::1", "::1/128"),
        ];
        for &(input, expected) in ok {
            assert_eq!(
                parse_cidr(input).map(|n| n.to_string()),
                Ok(expected.to_owned())
            );
        }
        let bad: &[(&str, &str)] = &[
            ("10.1.2.3/8", "did you mean 10.0.0.0/8?"),
            ("10.0.0.0/33", "is not a CIDR range"),
            ("example.com", "is not an IP address or CIDR range"),
            ("", "is not an IP address or CIDR range"),
        ];
        for &(input, expected) in bad {
            let err = parse_cidr(input).expect_err(input);
            assert!(err.contains(expected), "{input:?}: {err}");
        }
        assert_eq!("Strict".parse(), Ok(PolicyMode::Strict));
        assert!("lax".parse::<PolicyMode>().is_err());
    }
}
