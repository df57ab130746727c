//! Client library for agent hosts and tools that talk to an mcp-fleet registry.
//!
//! - [`RegistryClient`] speaks the registry's HTTP API (register, list by tags, look up,
//!   delete, fleet status) and turns its problem+json errors into [`ClientError`]s a person
//!   can act on.
//! - [`Discovery`] finds a fleet's MCP servers by tag, connects to all of them at once over
//!   Streamable HTTP (`<url>/mcp`), and keeps one index of their tools under collision-free
//!   [qualified names](names): `<service>__<tool>`, shared by a service's instances (as the
//!   gateway names tools), and each instance's own `<serverId>__<tool>`. It follows
//!   `tools/list_changed` notifications, reconnects dead sessions with backoff (their tools
//!   marked unavailable meanwhile), optionally [watches](DiscoveryBuilder::watch) the registry,
//!   and authenticates with bearer tokens or OAuth 2.0 client credentials as each entry's
//!   `auth` asks.
//!
//! ```no_run
//! # async fn demo() -> Result<(), mcp_fleet_discovery::DiscoveryError> {
//! let fleet = mcp_fleet_discovery::Discovery::builder("http://127.0.0.1:4000")
//!     .tags(["products"])
//!     .build()?;
//! fleet.connect().await?;
//! let result = fleet
//!     .call_tool("catalog__search_products", serde_json::json!({"query": "laptop"}))
//!     .await?;
//! # let _ = result;
//! # Ok(())
//! # }
//! ```
//!
//! Tool calls and the sessions' own POSTs take faster paths below rmcp's client where they can;
//! [`DiscoveryBuilder::rmcp_only`] (or `MCP_FLEET_RMCP_ONLY=1`) sends everything through rmcp's.
//!
//! This crate depends on the entry model and rmcp's client only: never on axum or sqlx.

mod auth;
mod call_http;
mod connection;
mod credentials;
mod direct;
mod discovery;
mod error;
mod events;
mod feed;
mod index;
mod kept_post;
pub mod names;
pub mod official_client;
mod registry_client;
mod sse;
mod supervisor;
mod watch;

pub use mcp_fleet_net::{guard, rmcp_errors};

pub use auth::{AuthError, BearerTokenFn, ClientCredentials};
pub use credentials::{
    CredentialKey, CredentialsError, OAuth2Option, TokenOption, UpstreamCredentials,
};
pub use discovery::{
    Aggregate, ConnectReport, DiscoveredPrompt, DiscoveredResource, Discovery, DiscoveryBuilder,
    RMCP_ONLY_ENV, rmcp_only_from_env,
};
pub use error::{DiscoveryError, ECHO_LIMIT, clip};
pub use events::{IndexEvent, IndexUpdates};
pub use feed::{Change, ChangeFeed};
pub use index::{DiscoveredTool, ServerState, ServerSummary};
pub use mcp_fleet_model::{
    AddressPolicy, AddressPolicyDocument, Entry, HealthStatus, PolicyMode, Refused, Routing,
    ServerCatalog, ToolHit, ToolPin,
};
pub use registry_client::{
    Blocking, ClientError, ListOptions, RegisterOutcome, RegistryClient, ServerPage, ToolPage,
    ToolPins, ToolSearch,
};
pub use supervisor::Backoff;
pub use watch::{FeedWatch, PollWatch, RegistryWatch};

/// The rmcp types that appear in this crate's API (tool definitions, call results), so a host
/// need not depend on rmcp itself to use them.
pub use rmcp::model::{
    CallToolResult, ContentBlock, GetPromptResult, Prompt, ReadResourceResult, Resource, Tool,
};
