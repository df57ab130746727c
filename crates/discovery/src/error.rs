//! Why discovery, a connection or a call failed, in words a person can act on; and the
//! translation of rmcp's transport errors into them.
//!
//! Over 500 lines with its unit tests, which sit next to the code they check (87 of 558 lines).

use std::error::Error as StdError;
use std::time::Duration;

use rmcp::ServiceError;
use rmcp::service::ClientInitializeError;
use rmcp::transport::streamable_http_client::StreamableHttpError;

use crate::auth::AuthError;
use crate::direct::DirectError;
use crate::registry_client::ClientError;
use crate::rmcp_errors::{auth_status, first_line};

/// Why an operation of [`Discovery`](crate::Discovery) failed.
///
/// The variants separate the caller's mistakes ([`ToolNotFound`](Self::ToolNotFound),
/// [`AmbiguousTool`](Self::AmbiguousTool), [`InvalidArguments`](Self::InvalidArguments)) from an
/// upstream's ([`Unavailable`](Self::Unavailable), [`Transport`](Self::Transport),
/// [`Timeout`](Self::Timeout), [`Auth`](Self::Auth), [`Rpc`](Self::Rpc)).
#[derive(Debug, Clone, thiserror::Error)]
pub enum DiscoveryError {
    /// The registry could not be queried (the message names the registry and the cause).
    #[error("{0}")]
    Registry(String),
    /// No connected server offers a tool (or prompt) by that name.
    #[error(
        "no tool named {name:?} among the {known} discovered tools (list them with \
         Discovery::tools or `mcp-fleet tools`; qualified names look like <service>__<tool>)"
    )]
    ToolNotFound {
        /// The name asked for.
        name: String,
        /// How many tools the index holds.
        known: usize,
    },
    /// A bare name offered by more than one service.
    #[error(
        "tool name {name:?} is offered by {} services; call one of them by its qualified name: {}",
        candidates.len(),
        candidates.join(", ")
    )]
    AmbiguousTool {
        /// The bare name asked for.
        name: String,
        /// Each service's name of the tool (`<service>__<tool>`), sorted.
        candidates: Vec<String>,
    },
    /// No server with this id is known.
    #[error("no server {0:?} among the discovered servers")]
    ServerNotFound(String),
    /// The arguments are not a JSON object.
    #[error("arguments of {tool} must be a JSON object (or null), not {found}")]
    InvalidArguments {
        /// The tool called.
        tool: String,
        /// What was given instead, e.g. "an array".
        found: &'static str,
    },
    /// The server offering the tool is not connected right now; it is being reconnected in
    /// the background.
    #[error(
        "{what} is unavailable: server {server:?} is not connected ({reason}); \
         it is being reconnected in the background"
    )]
    Unavailable {
        /// What was asked for (e.g. `tool catalog__search`).
        what: String,
        /// The server's id.
        server: String,
        /// Why it is not connected.
        reason: String,
    },
    /// The server did not answer within the time allowed.
    #[error("{what} on server {server:?} did not finish within {after:?}")]
    Timeout {
        /// What timed out (e.g. `connect`, `tool catalog__search`).
        what: String,
        /// The server's id.
        server: String,
        /// The limit that passed.
        after: Duration,
    },
    /// No connection to the server could be made (refused, unreachable, not made in time): the
    /// request was not sent, so sending it elsewhere cannot run it twice.
    #[error("server {server:?} ({url}): {reason}")]
    Unreachable {
        /// The server's id.
        server: String,
        /// Its MCP endpoint.
        url: String,
        /// The innermost cause, e.g. "Connection refused (os error 111)".
        reason: String,
    },
    /// The connection broke or failed after the request may have been sent.
    #[error("server {server:?} ({url}): {reason}")]
    Transport {
        /// The server's id.
        server: String,
        /// Its MCP endpoint.
        url: String,
        /// The innermost cause, e.g. "Connection refused (os error 111)".
        reason: String,
    },
    /// The address policy refuses the server's address: nothing was sent to it.
    #[error("server {server:?} ({url}): {reason}")]
    Refused {
        /// The server's id.
        server: String,
        /// Its MCP endpoint.
        url: String,
        /// `refused: ` and which address and range, e.g. `refused: address 127.0.0.1 is in the
        /// denied range 127.0.0.0/8 (address policy)`.
        reason: String,
    },
    /// Credentials were missing, or rejected by the server or its token endpoint.
    #[error("server {server:?}: {reason}")]
    Auth {
        /// The server's id.
        server: String,
        /// What went wrong and what to check.
        reason: String,
    },
    /// The server answered with a JSON-RPC error.
    #[error("server {server:?} answered {what} with JSON-RPC error {code}: {message}")]
    Rpc {
        /// What was asked (e.g. `tools/call catalog__search`).
        what: String,
        /// The server's id.
        server: String,
        /// The JSON-RPC error code.
        code: i32,
        /// The server's message.
        message: String,
    },
    /// The server answered something this client cannot use.
    #[error("server {server:?} answered {what} unexpectedly: {reason}")]
    Protocol {
        /// What was asked.
        what: String,
        /// The server's id.
        server: String,
        /// What was wrong with the answer.
        reason: String,
    },
    /// [`Discovery::shutdown`](crate::Discovery::shutdown) was called.
    #[error("discovery has been shut down")]
    Shutdown,
    /// The builder's settings, or the environment they default from, cannot be used.
    #[error("{0}")]
    Config(String),
}

impl From<ClientError> for DiscoveryError {
    fn from(e: ClientError) -> Self {
        Self::Registry(e.to_string())
    }
}

impl DiscoveryError {
    /// The cause alone, without the server's name: what a server's state shows.
    pub(crate) fn cause(&self) -> String {
        match self {
            Self::Transport { reason, .. }
            | Self::Unreachable { reason, .. }
            | Self::Refused { reason, .. }
            | Self::Auth { reason, .. }
            | Self::Unavailable { reason, .. } => reason.clone(),
            Self::Timeout { what, after, .. } => format!("no answer to {what} within {after:?}"),
            Self::Rpc {
                what,
                code,
                message,
                ..
            } => format!("{what} failed with JSON-RPC error {code}: {message}"),
            Self::Protocol { what, reason, .. } => {
                format!("unexpected answer to {what}: {reason}")
            }
            other => other.to_string(),
        }
    }

    /// Whether the error says the server (or its connection) is at fault, rather than the call.
    pub fn is_upstream(&self) -> bool {
        matches!(
            self,
            Self::Unavailable { .. }
                | Self::Timeout { .. }
                | Self::Transport { .. }
                | Self::Unreachable { .. }
                | Self::Refused { .. }
                | Self::Auth { .. }
                | Self::Rpc { .. }
                | Self::Protocol { .. }
                | Self::Registry(_)
        )
    }

    /// Whether the request certainly never reached the server: no connection could be made, the
    /// address policy refused it, or the server is not connected. Only such a call may go to another instance whatever the
    /// tool does.
    pub fn not_sent(&self) -> bool {
        matches!(
            self,
            Self::Unreachable { .. } | Self::Refused { .. } | Self::Unavailable { .. }
        )
    }
}

/// The most characters of a name or value an error repeats (see [`clip`]).
pub const ECHO_LIMIT: usize = 128;

/// The most characters of a server's own text (an error message, an unusable answer) an error
/// repeats.
pub(crate) const SERVER_TEXT_LIMIT: usize = 300;

/// `text` as an error may repeat it: at most [`ECHO_LIMIT`] characters, then `…` when cut.
/// Names and values come from clients and servers, and an error must not echo megabytes.
pub fn clip(text: &str) -> String {
    clip_to(text, ECHO_LIMIT)
}

/// `text` cut to `max` characters (on a character boundary), then `…` when cut.
pub(crate) fn clip_to(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((end, _)) => format!("{}…", &text[..end]),
    }
}

/// Whether `error` says no connection could be made, so nothing was sent: a connect error of
/// reqwest or of the kept-connection client, or a refused connection, anywhere in its chain.
fn no_connection(error: &(dyn StdError + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(current) = next {
        if current
            .downcast_ref::<reqwest::Error>()
            .is_some_and(reqwest::Error::is_connect)
            || current
                .downcast_ref::<hyper_util::client::legacy::Error>()
                .is_some_and(hyper_util::client::legacy::Error::is_connect)
        {
            return true;
        }
        // An `io::Error`'s `source` skips the error it wraps.
        let io = match current.downcast_ref::<HttpError>() {
            Some(StreamableHttpError::Io(io)) => Some(io),
            // `Client` holds the reqwest error without declaring it as its source.
            Some(StreamableHttpError::Client(inner)) => {
                next = Some(inner);
                continue;
            }
            _ => current.downcast_ref::<std::io::Error>(),
        };
        if let Some(io) = io {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return true;
            }
            if let Some(inner) = io.get_ref()
                && no_connection(inner)
            {
                return true;
            }
        }
        next = current.source();
    }
    false
}

/// What the reqwest-backed transport fails with.
type HttpError = StreamableHttpError<reqwest::Error>;

/// Who we were talking to, to name them in errors.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target<'a> {
    /// Server id.
    pub(crate) server: &'a str,
    /// MCP endpoint.
    pub(crate) url: &'a str,
    /// Whether the registry entry says the server wants credentials.
    pub(crate) wants_auth: bool,
}

impl Target<'_> {
    /// A failure of `initialize`.
    pub(crate) fn initialize_error(&self, error: &ClientInitializeError) -> DiscoveryError {
        match error {
            ClientInitializeError::JsonRpcError(e) => self.rpc("initialize", e),
            ClientInitializeError::TransportError { error, .. } => self.transport_error(error),
            // `server/discover` drew an error that is no 2026-07-28 one, and `initialize` then
            // failed too: the second failure says more, unless it is only that the server
            // answered it out of turn (as one that answers everything alike does).
            ClientInitializeError::LegacyFallbackFailed { discover, fallback } => {
                let out_of_turn = matches!(
                    **fallback,
                    ClientInitializeError::UncorrelatedErrorResponse { .. }
                        | ClientInitializeError::ConflictInitResponseId(..)
                );
                match &**discover {
                    ClientInitializeError::JsonRpcError(e) if out_of_turn => {
                        self.rpc("server/discover", e)
                    }
                    _ => self.initialize_error(fallback),
                }
            }
            other => DiscoveryError::Protocol {
                what: "initialize".into(),
                server: self.server.to_owned(),
                reason: clip_to(&other.to_string(), SERVER_TEXT_LIMIT),
            },
        }
    }

    /// A failure of a request made on an open session.
    pub(crate) fn service_error(&self, what: &str, error: &ServiceError) -> DiscoveryError {
        match error {
            ServiceError::McpError(e) => self.rpc(what, e),
            ServiceError::TransportSend(e) => self.transport_error(e),
            ServiceError::TransportClosed => DiscoveryError::Transport {
                server: self.server.to_owned(),
                url: self.url.to_owned(),
                reason: "the session is closed".into(),
            },
            ServiceError::Timeout { timeout } => DiscoveryError::Timeout {
                what: clip(what),
                server: self.server.to_owned(),
                after: *timeout,
            },
            other => DiscoveryError::Protocol {
                what: clip(what),
                server: self.server.to_owned(),
                reason: clip_to(&other.to_string(), SERVER_TEXT_LIMIT),
            },
        }
    }

    /// A failure of a call made on the session's direct path.
    pub(crate) fn direct_error(&self, what: &str, error: DirectError) -> DiscoveryError {
        match error {
            DirectError::Http(e) => self.transport_error(&e),
            DirectError::Rpc(e) => self.rpc(what, &e),
            DirectError::Protocol(reason) => DiscoveryError::Protocol {
                what: clip(what),
                server: self.server.to_owned(),
                reason: clip_to(&reason, SERVER_TEXT_LIMIT),
            },
            DirectError::Transport(reason) => DiscoveryError::Transport {
                server: self.server.to_owned(),
                url: self.url.to_owned(),
                reason,
            },
            DirectError::Unreachable(reason) => DiscoveryError::Unreachable {
                server: self.server.to_owned(),
                url: self.url.to_owned(),
                reason,
            },
            DirectError::Status(status) => self.auth_status_error(status),
            DirectError::Auth(e) => DiscoveryError::Auth {
                server: self.server.to_owned(),
                reason: e.to_string(),
            },
        }
    }

    /// `what` did not finish within `after`.
    pub(crate) fn timeout(&self, what: &str, after: Duration) -> DiscoveryError {
        DiscoveryError::Timeout {
            what: clip(what),
            server: self.server.to_owned(),
            after,
        }
    }

    fn rpc(&self, what: &str, e: &rmcp::model::ErrorData) -> DiscoveryError {
        DiscoveryError::Rpc {
            what: clip(what),
            server: self.server.to_owned(),
            code: e.code.0,
            message: clip_to(&e.message, SERVER_TEXT_LIMIT),
        }
    }

    /// The server refused the request with HTTP `status` (401 or 403).
    pub(crate) fn auth_status_error(&self, status: u16) -> DiscoveryError {
        let hint = if self.wants_auth {
            "the credentials were rejected; check the token (or client id and secret) \
             configured for this server (--upstream-token, --upstream-oauth2 or \
             --credentials-file)"
        } else {
            "its registry entry says auth.type \"none\", so no credentials are sent; set the \
             entry's auth.type (bearer or oauth2), then give them with --upstream-token, \
             --upstream-oauth2 or --credentials-file"
        };
        DiscoveryError::Auth {
            server: self.server.to_owned(),
            reason: format!("{} answered HTTP {status}: {hint}", self.url),
        }
    }

    /// The address policy refused the server's address (`why` names address and range).
    pub(crate) fn refused(&self, why: String) -> DiscoveryError {
        DiscoveryError::Refused {
            server: self.server.to_owned(),
            url: self.url.to_owned(),
            reason: format!("refused: {why} (address policy)"),
        }
    }

    /// A transport failure: the address policy's refusal, our own credential errors, a 401/403
    /// from the server, or a connection problem, in that order.
    pub(crate) fn transport_error(&self, error: &(dyn StdError + 'static)) -> DiscoveryError {
        if let Some(refused) = crate::guard::refused_by_policy(error) {
            return self.refused(refused.to_string());
        }
        if let Some(auth) = find_auth_error(error) {
            return DiscoveryError::Auth {
                server: self.server.to_owned(),
                reason: auth.to_string(),
            };
        }
        if let Some(status) = auth_status(error) {
            return self.auth_status_error(status);
        }
        let reason = chain_line(error);
        let (server, url) = (self.server.to_owned(), self.url.to_owned());
        if no_connection(error) {
            DiscoveryError::Unreachable {
                server,
                url,
                reason,
            }
        } else {
            DiscoveryError::Transport {
                server,
                url,
                reason,
            }
        }
    }
}

/// Our own [`AuthError`], wrapped by the transport in an `io::Error`.
fn find_auth_error<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a AuthError> {
    let mut next = Some(error);
    while let Some(current) = next {
        if let Some(auth) = current.downcast_ref::<AuthError>() {
            return Some(auth);
        }
        if let Some(io) = current.downcast_ref::<std::io::Error>()
            && let Some(auth) = io.get_ref().and_then(|e| e.downcast_ref::<AuthError>())
        {
            return Some(auth);
        }
        if let Some(StreamableHttpError::Io(io)) = current.downcast_ref::<HttpError>()
            && let Some(auth) = io.get_ref().and_then(|e| e.downcast_ref::<AuthError>())
        {
            return Some(auth);
        }
        next = current.source();
    }
    None
}

/// The error chain as one line of at most 300 characters.
pub(crate) fn chain_line(error: &(dyn StdError + 'static)) -> String {
    first_line(&crate::rmcp_errors::chain_text(error), 300)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_what_to_do() {
        let ambiguous = DiscoveryError::AmbiguousTool {
            name: "search".into(),
            candidates: vec!["alpha__search".into(), "beta__search".into()],
        };
        assert_eq!(
            ambiguous.to_string(),
            "tool name \"search\" is offered by 2 services; call one of them by its qualified \
             name: alpha__search, beta__search"
        );
        let unavailable = DiscoveryError::Unavailable {
            what: "tool alpha__search".into(),
            server: "alpha".into(),
            reason: "connection refused".into(),
        };
        assert!(
            unavailable
                .to_string()
                .contains("reconnected in the background")
        );
        assert!(unavailable.is_upstream());
        let missing = DiscoveryError::ToolNotFound {
            name: "nope".into(),
            known: 3,
        };
        assert!(!missing.is_upstream());
    }

    #[test]
    fn echoes_are_cut_on_characters() {
        assert_eq!(clip("short"), "short");
        let exact = "é".repeat(ECHO_LIMIT);
        assert_eq!(clip(&exact), exact);
        let cut = clip(&"é".repeat(1_000_000));
        assert_eq!(cut, format!("{exact}…"));
        assert_eq!(clip_to("abcdef", 3), "abc…");
    }

    #[test]
    fn only_failed_connects_are_unsent() {
        let target = Target {
            server: "alpha",
            url: "http://127.0.0.1:1/mcp",
            wants_auth: false,
        };
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let e = target.transport_error(&refused);
        assert!(
            matches!(e, DiscoveryError::Unreachable { .. }) && e.not_sent(),
            "{e:?}"
        );
        let wrapped = HttpError::Io(std::io::Error::other(refused));
        assert!(target.transport_error(&wrapped).not_sent());
        for broke in [
            std::io::Error::from(std::io::ErrorKind::ConnectionReset),
            std::io::Error::other("connection closed before message completed"),
        ] {
            let e = target.transport_error(&broke);
            assert!(
                matches!(e, DiscoveryError::Transport { .. }) && !e.not_sent(),
                "{e:?}"
            );
        }
    }

    #[test]
    fn our_auth_errors_are_found_inside_io_errors() {
        let wrapped = std::io::Error::other(AuthError::MissingToken {
            server: "alpha".into(),
            service: "alpha".into(),
        });
        let found = find_auth_error(&wrapped).expect("found");
        assert!(matches!(found, AuthError::MissingToken { .. }));
        let target = Target {
            server: "alpha",
            url: "http://127.0.0.1:1/mcp",
            wants_auth: true,
        };
        let e = target.transport_error(&wrapped);
        assert!(matches!(e, DiscoveryError::Auth { .. }), "{e:?}");
    }
}
