//! Who a request comes from behind a load balancer: the connection's peer, unless that peer is a
//! trusted proxy (`--trusted-proxy`), in which case its `Forwarded` (RFC 7239) or, without one,
//! `X-Forwarded-For` header names the client. Per-client rate limits key on the result.
//!
//! Each proxy appends the address it received the request from, so the list is read from the
//! right: trusted hops are skipped and the first untrusted address is the client (anything left
//! of it was written by that client and proves nothing). A hop that does not name an address
//! (`unknown`, an obfuscated name, garbage) stops the walk: the client is then the last trusted
//! hop, so a malformed header can only put a request in its proxy's budget, never in another
//! client's.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use axum::http::header::FORWARDED;
use ipnet::IpNet;

/// The address the request should be counted against.
pub(crate) fn client(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    // A listener on `[::]` sees IPv4 peers as `::ffff:a.b.c.d`: compare them as IPv4.
    let peer = peer.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops = if headers.contains_key(FORWARDED) {
        forwarded_for(headers)
    } else {
        x_forwarded_for(headers)
    };
    let mut client = peer;
    for hop in hops.iter().rev() {
        match hop.map(|ip| ip.to_canonical()) {
            Some(ip) if is_trusted(&ip) => client = ip,
            Some(ip) => return ip,
            None => return client,
        }
    }
    client
}

/// The `for=` of each element of every `Forwarded` header, in order; `None` for an element
/// without a usable one.
fn forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let mut hops = Vec::new();
    for value in headers.get_all(FORWARDED) {
        let Ok(value) = value.to_str() else {
            hops.push(None);
            continue;
        };
        for element in split_outside_quotes(value, ',') {
            let node = split_outside_quotes(element, ';')
                .into_iter()
                .find_map(|pair| {
                    let (name, value) = pair.split_once('=')?;
                    name.trim()
                        .eq_ignore_ascii_case("for")
                        .then_some(value.trim())
                });
            hops.push(node.and_then(node_address));
        }
    }
    hops
}

/// Every address of every `X-Forwarded-For` header, in order; `None` for one that is not an
/// address.
fn x_forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|value| match value.to_str() {
            Ok(value) => value.split(',').map(|hop| address(hop.trim())).collect(),
            Err(_) => vec![None],
        })
        .collect()
}

/// A `Forwarded` node (`192.0.2.60`, `"192.0.2.60:8080"`, `"[2001:db8::1]:4711"`) as an
/// address; `None` for `unknown`, obfuscated names and anything malformed.
fn node_address(node: &str) -> Option<IpAddr> {
    let node = match node.strip_prefix('"') {
        Some(quoted) => quoted.strip_suffix('"')?,
        None => node,
    };
    if let Some(v6) = node.strip_prefix('[') {
        let (ip, port) = v6.split_once(']')?;
        if !(port.is_empty() || port.strip_prefix(':').is_some_and(valid_port)) {
            return None;
        }
        return ip.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6);
    }
    match node.split_once(':') {
        Some((ip, port)) if valid_port(port) => {
            ip.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
        }
        Some(_) => None,
        None => node.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4),
    }
}

fn valid_port(port: &str) -> bool {
    port.parse::<u16>().is_ok()
}

/// An `X-Forwarded-For` hop: an address, with a port or IPv6 brackets as some proxies write it.
fn address(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| hop.strip_prefix('[')?.strip_suffix(']')?.parse().ok())
}

/// `s` split at `sep` where it is not inside a quoted string.
fn split_outside_quotes(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                parts.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                axum::http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_bytes(value).expect("value"),
            );
        }
        map
    }

    /// Headers as (name, value) pairs.
    type Pairs<'a> = &'a [(&'a str, &'a [u8])];

    /// One row per case: the peer, the headers, the client the limits should see.
    #[test]
    fn the_client_is_the_rightmost_untrusted_hop() {
        let trusted: Vec<IpNet> = ["10.0.0.0/8", "fd00::/8"]
            .iter()
            .map(|s| s.parse().expect("net"))
            .collect();
        let xff = "x-forwarded-for";
        let rows: &[(&str, Pairs, &str)] = &[
            // Not from a trusted proxy: the headers are ignored.
            ("192.0.2.9", &[(xff, b"198.51.100.1")], "192.0.2.9"),
            (
                "192.0.2.9",
                &[("forwarded", b"for=198.51.100.1")],
                "192.0.2.9",
            ),
            // From one: the hop it names, skipping trusted hops from the right.
            ("10.0.0.1", &[(xff, b"198.51.100.1")], "198.51.100.1"),
            (
                "10.0.0.1",
                &[(xff, b"6.6.6.6, 198.51.100.1, 10.0.0.2")],
                "198.51.100.1",
            ),
            (
                "10.0.0.1",
                &[(xff, b"6.6.6.6"), (xff, b"198.51.100.1")],
                "198.51.100.1",
            ),
            ("10.0.0.1", &[(xff, b"10.0.0.3, 10.0.0.2")], "10.0.0.3"),
            ("10.0.0.1", &[(xff, b"[2001:db8::1]:4711")], "2001:db8::1"),
            ("10.0.0.1", &[(xff, b"198.51.100.1:8080")], "198.51.100.1"),
            ("fd00::1", &[(xff, b"2001:db8::7")], "2001:db8::7"),
            (
                "::ffff:10.0.0.1",
                &[(xff, b"::ffff:198.51.100.1")],
                "198.51.100.1",
            ),
            ("::ffff:192.0.2.9", &[(xff, b"198.51.100.1")], "192.0.2.9"),
            // Forwarded wins over X-Forwarded-For; its quoting, ports and parameters.
            (
                "10.0.0.1",
                &[
                    ("forwarded", b"for=198.51.100.1;proto=https"),
                    (xff, b"6.6.6.6"),
                ],
                "198.51.100.1",
            ),
            (
                "10.0.0.1",
                &[(
                    "forwarded",
                    b"for=6.6.6.6, For=\"[2001:db8::1]:4711\";by=10.0.0.1",
                )],
                "2001:db8::1",
            ),
            (
                "10.0.0.1",
                &[("forwarded", b"proto=http;for=\"198.51.100.1:80\"")],
                "198.51.100.1",
            ),
            (
                "10.0.0.1",
                &[("forwarded", b"for=\"a,b\", for=198.51.100.1")],
                "198.51.100.1",
            ),
            // Bad values never name a client: the walk stops at the last trusted hop.
            ("10.0.0.1", &[(xff, b"not-an-ip")], "10.0.0.1"),
            (
                "10.0.0.1",
                &[(xff, b"198.51.100.1, garbage, 10.0.0.2")],
                "10.0.0.2",
            ),
            ("10.0.0.1", &[(xff, b"")], "10.0.0.1"),
            ("10.0.0.1", &[(xff, b"\xff\xfe")], "10.0.0.1"),
            ("10.0.0.1", &[("forwarded", b"for=unknown")], "10.0.0.1"),
            ("10.0.0.1", &[("forwarded", b"for=_hidden")], "10.0.0.1"),
            ("10.0.0.1", &[("forwarded", b"proto=https")], "10.0.0.1"),
            (
                "10.0.0.1",
                &[("forwarded", b"for=198.51.100.1:99999")],
                "10.0.0.1",
            ),
            (
                "10.0.0.1",
                &[("forwarded", b"for=[2001:db8::1]")],
                "2001:db8::1",
            ),
            (
                "10.0.0.1",
                &[("forwarded", b"for=\"[2001:db8::1]x\"")],
                "10.0.0.1",
            ),
            (
                "10.0.0.1",
                &[("forwarded", b"for=\"198.51.100.1")],
                "10.0.0.1",
            ),
            // No header: the proxy itself.
            ("10.0.0.1", &[], "10.0.0.1"),
        ];
        for (peer, pairs, want) in rows {
            assert_eq!(
                client(ip(peer), &headers(pairs), &trusted),
                ip(want),
                "peer {peer}, headers {pairs:?}"
            );
        }
        // With no trusted proxy, nothing is believed.
        assert_eq!(
            client(ip("10.0.0.1"), &headers(&[(xff, b"198.51.100.1")]), &[]),
            ip("10.0.0.1")
        );
    }
}
