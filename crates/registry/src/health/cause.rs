//! Why a probe failed, said two ways: a short cause for people (`lastError`: "connection
//! refused", "timed out after 5 s", "HTTP 503", "TLS: certificate expired", "DNS: no such host",
//! "not an MCP server: …") read from the error chain's types, and the whole chain as one line
//! (`lastErrorDetail`) for whoever investigates.

use std::error::Error;
use std::io::ErrorKind;
use std::time::Duration;

use mcp_fleet_net::guard::ResolveError;
use mcp_fleet_net::rmcp_errors::{chain_text, first_line};
use rmcp::transport::streamable_http_client::StreamableHttpError;

use super::ssrf::refused_by_policy;

/// Longest short cause, in characters.
const MAX_CAUSE_CHARS: usize = 200;
/// Longest detail kept, in characters: a chain with a server's error body in it stays bounded.
const MAX_DETAIL_CHARS: usize = 2000;

type HttpError = StreamableHttpError<reqwest::Error>;

/// A failed probe, as people and investigators read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    /// The short cause (`lastError`).
    pub(crate) cause: String,
    /// The whole error chain (`lastErrorDetail`).
    pub(crate) detail: String,
    /// Whether the server answered at all (an HTTP status, a body that is not MCP): only then
    /// does the probe have a latency.
    pub(crate) answered: bool,
}

impl Failure {
    /// A failure whose cause is already short; `detail` says the rest.
    pub(crate) fn new(cause: impl Into<String>, detail: impl Into<String>, answered: bool) -> Self {
        Self {
            cause: first_line(&cause.into(), MAX_CAUSE_CHARS),
            detail: one_line(&detail.into()),
            answered,
        }
    }

    /// No answer within `limit`.
    pub(crate) fn timed_out(limit: Duration, detail: impl Into<String>) -> Self {
        Self::new(format!("timed out after {}", human(limit)), detail, false)
    }

    /// Reads `error`'s chain: `step` (what the probe was doing) prefixes the detail, and
    /// `limit` is the probe's time limit, named when the chain says it timed out.
    pub(crate) fn from_error(step: &str, error: &(dyn Error + 'static), limit: Duration) -> Self {
        let chain = chain_text(error);
        let detail = if step.is_empty() {
            chain
        } else {
            format!("{step}: {chain}")
        };
        match cause(error) {
            Some(Cause::TimedOut) => Self::timed_out(limit, detail),
            Some(Cause::Said { text, answered }) => Self::new(text, detail, answered),
            // Nothing known in the chain: its innermost message is the most specific.
            None => Self::new(innermost(error), detail, false),
        }
    }
}

/// `5 s`, `1.5 s`, `500 ms`: a duration as people write it.
pub(crate) fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

enum Cause {
    TimedOut,
    Said { text: String, answered: bool },
}

fn said(text: impl Into<String>) -> Option<Cause> {
    Some(Cause::Said {
        text: text.into(),
        answered: false,
    })
}

fn answered(text: impl Into<String>) -> Option<Cause> {
    Some(Cause::Said {
        text: text.into(),
        answered: true,
    })
}

/// The first error in the chain that names a cause, outermost first. The chain is followed
/// into the errors an `io::Error` wraps and the reqwest error rmcp's `Client` variant holds,
/// which neither declares as its `source()`.
fn cause(error: &(dyn Error + 'static)) -> Option<Cause> {
    if let Some(refused) = refused_by_policy(error) {
        return said(format!("refused: {refused}"));
    }
    let mut chain = Vec::new();
    collect(error, &mut chain, 0);
    // The innermost transport facts (TLS, DNS, socket) say more than the wrappers around them.
    for e in &chain {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return said(format!("TLS: {}", tls_cause(tls)));
        }
        if let Some(dns) = e.downcast_ref::<ResolveError>() {
            return said(dns_cause(dns));
        }
    }
    for e in &chain {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(found) = io_cause(io)
        {
            return Some(found);
        }
    }
    for e in &chain {
        if let Some(http) = e.downcast_ref::<HttpError>()
            && let Some(found) = rmcp_cause(http)
        {
            return Some(found);
        }
        if let Some(re) = e.downcast_ref::<reqwest::Error>() {
            if re.is_timeout() {
                return Some(Cause::TimedOut);
            }
            if let Some(status) = re.status() {
                return answered(format!("HTTP {}", status.as_u16()));
            }
        }
        if let Some(hyper) = e.downcast_ref::<hyper::Error>()
            && (hyper.is_incomplete_message() || hyper.is_closed() || hyper.is_canceled())
        {
            return said("connection closed");
        }
    }
    None
}

fn collect<'a>(
    error: &'a (dyn Error + 'static),
    out: &mut Vec<&'a (dyn Error + 'static)>,
    depth: u8,
) {
    // Chains are short; the bound only guards against a cycle.
    if depth > 32 {
        return;
    }
    out.push(error);
    if let Some(io) = error.downcast_ref::<std::io::Error>()
        && let Some(inner) = io.get_ref()
    {
        return collect(inner, out, depth + 1);
    }
    if let Some(StreamableHttpError::Client(inner)) = error.downcast_ref::<HttpError>() {
        return collect(inner, out, depth + 1);
    }
    if let Some(next) = error.source() {
        collect(next, out, depth + 1);
    }
}

fn io_cause(io: &std::io::Error) -> Option<Cause> {
    match io.kind() {
        ErrorKind::ConnectionRefused => said("connection refused"),
        ErrorKind::TimedOut => Some(Cause::TimedOut),
        ErrorKind::ConnectionReset => said("connection reset"),
        ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe | ErrorKind::UnexpectedEof => {
            said("connection closed")
        }
        ErrorKind::HostUnreachable => said("host unreachable"),
        ErrorKind::NetworkUnreachable => said("network unreachable"),
        ErrorKind::AddrNotAvailable => said("address not available"),
        _ => None,
    }
}

fn dns_cause(dns: &ResolveError) -> String {
    match dns {
        ResolveError::OnlyDenied { .. } => format!("refused: {dns}"),
        ResolveError::NoAddresses { .. } => "DNS: no addresses".into(),
        ResolveError::Lookup { error, .. } => {
            // getaddrinfo says "Name or service not known" (glibc), "nodename nor servname
            // provided, or not known" (BSD), "No address associated with hostname".
            let text = error.to_string();
            if text.contains("not known") || text.contains("No address associated") {
                "DNS: no such host".into()
            } else if text.contains("Temporary failure") {
                "DNS: lookup failed (temporary)".into()
            } else {
                "DNS: lookup failed".into()
            }
        }
    }
}

fn tls_cause(tls: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    match tls {
        rustls::Error::InvalidCertificate(cert) => match cert {
            C::Expired | C::ExpiredContext { .. } => "certificate expired".into(),
            C::NotValidYet | C::NotValidYetContext { .. } => "certificate not valid yet".into(),
            C::UnknownIssuer => "certificate from an unknown issuer".into(),
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                "certificate not valid for this host name".into()
            }
            C::Revoked => "certificate revoked".into(),
            C::BadSignature => "bad certificate signature".into(),
            _ => "invalid certificate".into(),
        },
        rustls::Error::AlertReceived(_) => "handshake refused by the server".into(),
        rustls::Error::NoCertificatesPresented => "the server sent no certificate".into(),
        rustls::Error::PeerIncompatible(_) => "no protocol in common with the server".into(),
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            "not a TLS server".into()
        }
        _ => "handshake failed".into(),
    }
}

fn rmcp_cause(http: &HttpError) -> Option<Cause> {
    match http {
        StreamableHttpError::HttpStatus(s) => answered(format!("HTTP {}", s.status)),
        StreamableHttpError::UnexpectedServerResponse(text) => {
            // rmcp words a non-success status as "HTTP 404 Not Found: <body>".
            let code = text
                .strip_prefix("HTTP ")
                .and_then(|rest| rest.get(..3))
                .filter(|code| code.bytes().all(|b| b.is_ascii_digit()));
            match code {
                Some(code) => answered(format!("HTTP {code}")),
                None => answered("not an MCP server: no JSON-RPC answer"),
            }
        }
        StreamableHttpError::UnexpectedContentType(ct) => answered(format!(
            "not an MCP server: answered {}",
            ct.as_deref().unwrap_or("without a content type")
        )),
        StreamableHttpError::Deserialize(_) => answered("not an MCP server: no JSON-RPC answer"),
        StreamableHttpError::ResponseBodyTooLarge { .. } => {
            answered("not an MCP server: answer too large")
        }
        StreamableHttpError::SessionExpired => answered("HTTP 404"),
        StreamableHttpError::UnexpectedEndOfStream => said("connection closed"),
        _ => None,
    }
}

fn innermost(error: &(dyn Error + 'static)) -> String {
    let mut chain = Vec::new();
    collect(error, &mut chain, 0);
    chain
        .last()
        .map_or_else(|| error.to_string(), |e| e.to_string())
}

/// `text` on one line (every run of white space one space), at most [`MAX_DETAIL_CHARS`].
fn one_line(text: &str) -> String {
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    first_line(&joined, MAX_DETAIL_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_secs(5);

    fn io(kind: ErrorKind, inner: impl Into<Box<dyn Error + Send + Sync>>) -> std::io::Error {
        std::io::Error::new(kind, inner)
    }

    /// The chains the probes meet, built as the libraries build them: each gives its short
    /// cause, and the detail keeps every message of the chain.
    #[test]
    fn causes_are_read_from_the_chain() {
        let expired = io(
            ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::Expired),
        );
        let unknown = io(
            ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        let no_host = ResolveError::Lookup {
            host: "nope.example".into(),
            error: std::io::Error::other(
                "failed to lookup address information: Name or service not known",
            ),
        };
        let refused = io(
            ErrorKind::ConnectionRefused,
            "Connection refused (os error 111)",
        );
        let wrapped = std::io::Error::other(io(ErrorKind::TimedOut, "deadline"));
        let status = HttpError::HttpStatus(
            rmcp::transport::streamable_http_client::HttpStatusError::new(503, None),
        );
        let not_found = HttpError::UnexpectedServerResponse("HTTP 404 Not Found: no route".into());
        let html = HttpError::UnexpectedContentType(Some("text/html".into()));
        let rows: [(&(dyn Error + 'static), &str, &str, bool); 8] = [
            (
                &expired,
                "TLS: certificate expired",
                "invalid peer certificate: Expired",
                false,
            ),
            (
                &unknown,
                "TLS: certificate from an unknown issuer",
                "UnknownIssuer",
                false,
            ),
            (
                &no_host,
                "DNS: no such host",
                "Name or service not known",
                false,
            ),
            (&refused, "connection refused", "os error 111", false),
            (&wrapped, "timed out after 5 s", "deadline", false),
            (&status, "HTTP 503", "HTTP 503", true),
            (&not_found, "HTTP 404", "no route", true),
            (
                &html,
                "not an MCP server: answered text/html",
                "text/html",
                true,
            ),
        ];
        for (error, cause, in_detail, was_answered) in rows {
            let f = Failure::from_error("initialize", error, LIMIT);
            assert_eq!(f.cause, cause, "{error}");
            assert!(
                f.detail.starts_with("initialize: ") && f.detail.contains(in_detail),
                "{error}: {}",
                f.detail
            );
            assert_eq!(f.answered, was_answered, "{error}");
        }
    }

    #[test]
    fn an_unknown_chain_gives_its_innermost_message() {
        let error = std::io::Error::other("something odd\nsecond line");
        let f = Failure::from_error("", &error, LIMIT);
        assert_eq!(f.cause, "something odd");
        assert_eq!(f.detail, "something odd second line");
    }

    #[test]
    fn durations_read_as_people_write_them() {
        let cases = [(5000, "5 s"), (500, "500 ms"), (1500, "1.5 s"), (0, "0 ms")];
        for (ms, want) in cases {
            assert_eq!(human(Duration::from_millis(ms)), want);
        }
    }
}
