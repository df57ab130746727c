//! How a client opens an MCP connection: `server/discover` first (2026-07-28, no session), and
//! the `initialize` handshake for servers that speak only session-based revisions.
//!
//! rmcp's `ClientLifecycleMode::Auto` falls back by itself when `server/discover` draws a legacy
//! answer (an unknown method, a plain `4xx`). A server that knows `server/discover` but supports
//! only session-based revisions answers with `UnsupportedProtocolVersionError`, which rmcp
//! reports as [`ClientInitializeError::NoCompatibleProtocolVersion`]: [`needs_initialize`] says
//! when to open again with `initialize`.

use rmcp::ClientLifecycleMode;
use rmcp::model::ProtocolVersion;
use rmcp::service::ClientInitializeError;

/// `server/discover` at the newest revision, falling back to `initialize` at the newest
/// revision that has it (the server may settle on an older one).
pub fn modern_first() -> ClientLifecycleMode {
    ClientLifecycleMode::Auto {
        preferred_versions: vec![ProtocolVersion::LATEST],
        legacy_version: Some(ProtocolVersion::LATEST_WITH_INITIALIZE),
    }
}

/// Whether `error`, from opening with [`modern_first`], says the server supports only revisions
/// with an `initialize` handshake: open again with it.
pub fn needs_initialize(error: &ClientInitializeError) -> bool {
    match error {
        ClientInitializeError::NoCompatibleProtocolVersion {
            server_supported, ..
        } => server_supported.iter().any(ProtocolVersion::has_initialize),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_server_with_a_handshake_version_is_opened_again() {
        let error = |server_supported: Vec<ProtocolVersion>| {
            ClientInitializeError::NoCompatibleProtocolVersion {
                client_supported: vec![ProtocolVersion::LATEST],
                server_supported,
            }
        };
        assert!(needs_initialize(&error(vec![
            ProtocolVersion::V_2025_06_18
        ])));
        assert!(needs_initialize(&error(vec![
            ProtocolVersion::V_2025_11_25,
            ProtocolVersion::V_2025_06_18
        ])));
        assert!(!needs_initialize(&error(Vec::new())));
        assert!(!needs_initialize(&ClientInitializeError::Cancelled));
    }
}
