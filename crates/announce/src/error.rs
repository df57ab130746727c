//! Why an announcement could not be made.

use mcp_fleet_model::ValidationErrors;

/// Why registering, heartbeating, deregistering or waiting for the server failed.
///
/// Each variant holds the innermost cause as text, so a chain of errors never repeats it.
#[derive(Debug, thiserror::Error)]
pub enum AnnounceError {
    /// The registration would be refused by any registry (checked before anything is sent).
    #[error("the registration is invalid: {0}")]
    Invalid(ValidationErrors),
    /// The TTL is not a whole number of seconds within the registry's range.
    #[error("TTL {given}: must be whole seconds from 5 to 86400")]
    Ttl {
        /// The TTL given, as a person reads it.
        given: String,
    },
    /// The registry URL is not a usable base URL.
    #[error("invalid registry URL {url}: {reason}")]
    RegistryUrl {
        /// What was given.
        url: String,
        /// Why it is unusable.
        reason: String,
    },
    /// No answer from the registry: nothing listening, DNS failure, timeout.
    #[error("cannot reach registry at {url}: {reason}")]
    Unreachable {
        /// The registry's base URL.
        url: String,
        /// The innermost cause, e.g. "Connection refused (os error 111)".
        reason: String,
    },
    /// The registry answered with an error status.
    #[error("registry answered {status}: {detail}")]
    Registry {
        /// HTTP status.
        status: u16,
        /// The problem's `detail` (or `title`), with the fields it names.
        detail: String,
    },
    /// The server's MCP endpoint did not answer `initialize` in time.
    #[error("MCP endpoint {url} did not answer within {waited} (last attempt: {last})")]
    NotReady {
        /// `<url>/mcp` of the entry.
        url: String,
        /// How long it was given, e.g. "30 s".
        waited: String,
        /// What the last attempt got, e.g. "connection refused" or "HTTP 404".
        last: String,
    },
}

impl AnnounceError {
    /// The registry's HTTP status, when it answered with an error.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Registry { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// True when trying again cannot help: the registry refused the registration itself or
    /// its credentials (a `4xx` other than `408` and `429`), or the input is wrong.
    pub fn is_refusal(&self) -> bool {
        match self {
            Self::Registry { status, .. } => {
                (400..500).contains(status) && !matches!(status, 408 | 429)
            }
            Self::Invalid(_) | Self::Ttl { .. } | Self::RegistryUrl { .. } => true,
            Self::Unreachable { .. } | Self::NotReady { .. } => false,
        }
    }
}

/// The innermost error message: the part that says what actually happened.
pub(crate) fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// A duration as a person reads it: "30 s", "1.5 s", "250 ms".
pub(crate) fn human(d: std::time::Duration) -> String {
    if d < std::time::Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}
