//! The registry's HTTP API as Rust calls.
//!
//! Over 500 lines: one method per route of the registry's API, each short; the list grows with the API.

use std::time::Duration;

use mcp_fleet_model::{
    AddressPolicy, AddressPolicyDocument, ContractBreak, Entry, FieldError, FleetStatus, Routing,
    ServerCatalog, ToolHit, ToolPin, Version, VersionDiff,
};
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::Value;
use url::Url;

/// Why a registry call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The registry URL is not a usable base URL.
    #[error("invalid registry URL {url:?}: {reason}")]
    InvalidUrl {
        /// What was given.
        url: String,
        /// Why it is unusable.
        reason: String,
    },
    /// No answer: nothing listening, DNS failure, timeout.
    #[error("cannot reach registry at {url}: {reason}")]
    Unreachable {
        /// The registry's base URL.
        url: String,
        /// The innermost cause, e.g. "Connection refused (os error 111)".
        reason: String,
    },
    /// The registry answered with an error (an RFC 7807 problem).
    #[error(
        "registry answered {status}: {detail}{}{}",
        format_fields(.errors),
        format_breaks(.breaking)
    )]
    Problem {
        /// HTTP status.
        status: u16,
        /// The problem's `detail` (or `title`).
        detail: String,
        /// Invalid fields, for validation errors.
        errors: Vec<FieldError>,
        /// Breaking changes, when a routing policy was refused for breaking the stable
        /// version's contract (`breaking-contract`).
        breaking: Vec<ContractBreak>,
    },
    /// The answer was not what the API promises.
    #[error("unexpected answer from registry: {0}")]
    Decode(String),
}

fn format_fields(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("\n  - {}: {}", e.field, e.message))
        .collect()
}

/// One line per breaking change: `2.0.0 lookup (input /properties/warehouse): …`.
fn format_breaks(breaks: &[ContractBreak]) -> String {
    breaks
        .iter()
        .map(|b| {
            let place = match (&b.location, b.path.as_str()) {
                (None, _) => String::new(),
                (Some(location), "") => format!(" ({location})"),
                (Some(location), path) => format!(" ({location} {path})"),
            };
            format!("\n  - {} {}{place}: {}", b.version, b.tool, b.message)
        })
        .collect()
}

/// What `POST /servers` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterOutcome {
    /// A new entry (`201`).
    Created,
    /// An existing entry was replaced (`200`).
    Replaced,
}

/// Filters and paging of [`RegistryClient::list`].
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// Entries having ANY of these tags.
    pub tags: Vec<String>,
    /// `healthy` (the registry's default when `None`), `degraded`, `down`, `unknown` or `any`.
    pub status: Option<String>,
    /// Page size (registry default 100, max 1000).
    pub limit: Option<u32>,
    /// The `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

/// One page of `GET /servers`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerPage {
    /// The entries.
    pub servers: Vec<Entry>,
    /// Set when more remain.
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// What [`RegistryClient::list_blocking`] got.
#[derive(Debug, Clone)]
pub enum Blocking {
    /// A listing (new, or the first one).
    Changed {
        /// The page.
        page: ServerPage,
        /// The registry revision it reflects; `None` from a registry without a change feed.
        revision: Option<i64>,
        /// Its `ETag`, to send back as `If-None-Match`.
        etag: Option<String>,
    },
    /// `304 Not Modified`: the answer is still the one named by the `ETag` sent.
    Unchanged {
        /// The registry's revision now.
        revision: Option<i64>,
    },
}

/// What [`RegistryClient::search_tools`] asks `GET /tools`.
#[derive(Debug, Clone, Default)]
pub struct ToolSearch {
    /// Words to search for (at most 200 characters); none: every tool, by server and name.
    pub q: Option<String>,
    /// Only entries having ANY of these tags.
    pub tags: Vec<String>,
    /// Only entries of this service.
    pub service: Option<String>,
    /// Only entries with this status (`healthy`, `degraded`, `down`, `unknown`); `None` or
    /// `any`: every status.
    pub status: Option<String>,
    /// Page size (registry default 20, max 100).
    pub limit: Option<u32>,
    /// The `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

/// One page of `GET /tools`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolPage {
    /// Matching tools, most relevant first.
    pub tools: Vec<ToolHit>,
    /// Set when more remain.
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// The body of `GET /services/{service}/tools/pins` and `POST …/tools/accept`.
#[derive(Debug, Clone, Deserialize)]
pub struct ToolPins {
    /// The service.
    pub service: String,
    /// Its trusted tool hashes, by version and tool.
    pub pins: Vec<ToolPin>,
}

#[derive(Deserialize)]
struct ProblemBody {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    detail: Option<String>,
    #[serde(default)]
    errors: Vec<FieldError>,
    #[serde(default)]
    breaking: Vec<ContractBreak>,
}

/// A client of one registry.
#[derive(Debug, Clone)]
pub struct RegistryClient {
    base: Url,
    pub(crate) http: reqwest::Client,
    token: Option<BearerToken>,
}

/// A bearer token that never shows in `Debug` output or logs.
#[derive(Clone)]
struct BearerToken(std::sync::Arc<str>);

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(…)")
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

impl RegistryClient {
    /// A client of the registry at `base_url` (e.g. `http://127.0.0.1:4000`), with a 10 s
    /// timeout per request.
    pub fn new(base_url: &str) -> Result<Self, ClientError> {
        let invalid = |reason: String| ClientError::InvalidUrl {
            url: base_url.to_owned(),
            reason,
        };
        let base = mcp_fleet_model::registry_base_url(base_url).map_err(invalid)?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| invalid(e.to_string()))?;
        Ok(Self {
            base,
            http,
            token: None,
        })
    }

    /// Sends `Authorization: Bearer <token>` with every request (a registry token, `mcpf_…`,
    /// or an OIDC JWT), for registries that authenticate writes.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        let token: String = token.into();
        self.token = (!token.trim().is_empty()).then(|| BearerToken(token.trim().into()));
        self
    }

    /// The registry's base URL.
    pub fn base_url(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    pub(crate) fn url(&self, path: &str) -> Result<Url, ClientError> {
        self.base.join(path).map_err(|e| ClientError::InvalidUrl {
            url: path.to_owned(),
            reason: e.to_string(),
        })
    }

    pub(crate) async fn send(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ClientError> {
        let res = self.send_raw(req).await?;
        self.check(res).await
    }

    async fn send_raw(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ClientError> {
        let req = match &self.token {
            Some(token) => req.bearer_auth(&token.0),
            None => req,
        };
        req.send().await.map_err(|e| ClientError::Unreachable {
            url: self.base_url().to_owned(),
            reason: root_cause(&e),
        })
    }

    /// `res` when it is a success, else the registry's problem as an error.
    async fn check(&self, res: reqwest::Response) -> Result<reqwest::Response, ClientError> {
        if res.status().is_success() {
            return Ok(res);
        }
        let status = res.status().as_u16();
        let text = res.text().await.unwrap_or_default();
        Err(match serde_json::from_str::<ProblemBody>(&text) {
            Ok(p) => ClientError::Problem {
                status,
                detail: p.detail.or(p.title).unwrap_or_default(),
                errors: p.errors,
                breaking: p.breaking,
            },
            Err(_) => ClientError::Problem {
                status,
                detail: text.chars().take(200).collect(),
                errors: Vec::new(),
                breaking: Vec::new(),
            },
        })
    }

    pub(crate) async fn decode<T: serde::de::DeserializeOwned>(
        res: reqwest::Response,
    ) -> Result<T, ClientError> {
        let bytes = res
            .bytes()
            .await
            .map_err(|e| ClientError::Decode(root_cause(&e)))?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// Registers (or re-registers) a server: `body` is a registration in the seed's fields.
    pub async fn register(&self, body: &Value) -> Result<RegisterOutcome, ClientError> {
        let res = self
            .send(self.http.post(self.url("servers")?).json(body))
            .await?;
        Ok(if res.status() == StatusCode::CREATED {
            RegisterOutcome::Created
        } else {
            RegisterOutcome::Replaced
        })
    }

    /// One page of `GET /servers`.
    pub async fn list(&self, options: &ListOptions) -> Result<ServerPage, ClientError> {
        let url = self.list_url(options, None)?;
        Self::decode(self.send(self.http.get(url)).await?).await
    }

    /// One page of `GET /servers` as a blocking query of the registry's change feed: with
    /// `wait` = `(revision, timeout)` the registry answers once it is past `revision` (and,
    /// with `etag`, once the answer differs from that one), or after `timeout`. Without `wait`
    /// it answers at once. A registry without a change feed answers at once too, without a
    /// revision.
    pub async fn list_blocking(
        &self,
        options: &ListOptions,
        wait: Option<(i64, Duration)>,
        etag: Option<&str>,
    ) -> Result<Blocking, ClientError> {
        let url = self.list_url(options, wait)?;
        let mut req = self.http.get(url);
        if let Some((_, timeout)) = wait {
            // The registry holds the request up to `timeout`; leave it time to answer.
            req = req.timeout(timeout + Duration::from_secs(10));
        }
        if let Some(etag) = etag {
            req = req.header(reqwest::header::IF_NONE_MATCH, etag);
        }
        let res = self.send_raw(req).await?;
        let revision = res
            .headers()
            .get("x-registry-revision")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<i64>().ok());
        if res.status() == StatusCode::NOT_MODIFIED {
            return Ok(Blocking::Unchanged { revision });
        }
        let res = self.check(res).await?;
        let etag = res
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let page = Self::decode(res).await?;
        Ok(Blocking::Changed {
            page,
            revision,
            etag,
        })
    }

    fn list_url(
        &self,
        options: &ListOptions,
        wait: Option<(i64, Duration)>,
    ) -> Result<Url, ClientError> {
        let mut url = self.url("servers")?;
        {
            let mut q = url.query_pairs_mut();
            if !options.tags.is_empty() {
                q.append_pair("tags", &options.tags.join(","));
            }
            if let Some(s) = &options.status {
                q.append_pair("status", s);
            }
            if let Some(n) = options.limit {
                q.append_pair("limit", &n.to_string());
            }
            if let Some(c) = &options.cursor {
                q.append_pair("cursor", c);
            }
            if let Some((revision, timeout)) = wait {
                q.append_pair("wait", &revision.to_string());
                q.append_pair("timeout", &format!("{}ms", timeout.as_millis()));
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        Ok(url)
    }

    /// Every matching entry, following `nextCursor` to the end.
    pub async fn list_all(&self, options: &ListOptions) -> Result<Vec<Entry>, ClientError> {
        let mut options = options.clone();
        let mut all = Vec::new();
        loop {
            let page = self.list(&options).await?;
            all.extend(page.servers);
            match page.next_cursor {
                Some(c) => options.cursor = Some(c),
                None => return Ok(all),
            }
        }
    }

    /// The entry `id`, or `None` when there is none.
    pub async fn get(&self, id: &str) -> Result<Option<Entry>, ClientError> {
        let url = self.url(&format!("servers/{id}"))?;
        match self.send(self.http.get(url)).await {
            Ok(res) => Self::decode(res).await.map(Some),
            Err(ClientError::Problem { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Deletes the entry `id`; `false` when there was none.
    pub async fn delete(&self, id: &str) -> Result<bool, ClientError> {
        let url = self.url(&format!("servers/{id}"))?;
        match self.send(self.http.delete(url)).await {
            Ok(_) => Ok(true),
            Err(ClientError::Problem { status: 404, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Renews the entry `id`'s TTL (`PUT /servers/{id}/heartbeat`); `false` when there is no
    /// such entry.
    pub async fn heartbeat(&self, id: &str) -> Result<bool, ClientError> {
        let url = self.url(&format!("servers/{id}/heartbeat"))?;
        match self.send(self.http.put(url)).await {
            Ok(_) => Ok(true),
            Err(ClientError::Problem { status: 404, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Probes the entry `id` now (`POST /servers/{id}/check`): the check's outcome as the
    /// registry answers it (`{id, outcome, status, latencyMs, error, errorDetail, checkedAt}`).
    pub async fn check_now(&self, id: &str) -> Result<Value, ClientError> {
        let url = self.url(&format!("servers/{id}/check"))?;
        Self::decode(self.send(self.http.post(url)).await?).await
    }

    /// The fleet's `GET /status`.
    pub async fn status(&self) -> Result<FleetStatus, ClientError> {
        Self::decode(self.send(self.http.get(self.url("status")?)).await?).await
    }

    /// Opens the change feed (`GET /events`) after revision `after` (sent as `Last-Event-ID`),
    /// or from now; [`ChangeFeed`](crate::ChangeFeed) reads it.
    pub(crate) async fn open_events(
        &self,
        after: Option<i64>,
    ) -> Result<reqwest::Response, ClientError> {
        // A stream is open for as long as it is followed, not the 10 s of a plain request; a
        // silent one is noticed by its reader (the registry writes a comment every 15 s).
        let mut req = self
            .http
            .get(self.url("events")?)
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .timeout(Duration::from_secs(24 * 60 * 60));
        if let Some(after) = after {
            req = req.header("last-event-id", after.to_string());
        }
        self.send(req).await
    }

    /// The address policy the registry enforces (`GET /address-policy`): where it lets entries
    /// point and probes go. `None` from a registry that publishes none (older versions).
    pub async fn address_policy(&self) -> Result<Option<AddressPolicy>, ClientError> {
        let url = self.url("address-policy")?;
        match self.send(self.http.get(url)).await {
            Ok(res) => {
                let doc: AddressPolicyDocument = Self::decode(res).await?;
                AddressPolicy::try_from(doc)
                    .map(Some)
                    .map_err(|e| ClientError::Decode(format!("address policy: {e}")))
            }
            Err(ClientError::Problem { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The registry's address policy with `local`'s ranges added: what a gateway or a host
    /// should enforce. A registry that publishes none contributes the defaults, with a warning.
    pub async fn effective_address_policy(
        &self,
        local: &AddressPolicy,
    ) -> Result<AddressPolicy, ClientError> {
        let published = match self.address_policy().await? {
            Some(policy) => policy,
            None => {
                tracing::warn!(
                    registry = %self.base,
                    "the registry publishes no address policy (GET /address-policy); using \
                     the default one and this process's flags"
                );
                AddressPolicy::default()
            }
        };
        Ok(published.merged(local))
    }

    fn routing_url(&self, service: &str, rest: &str) -> Result<Url, ClientError> {
        self.url(&format!("services/{service}/{rest}"))
    }

    /// The routing policy of `service` (`GET /services/{service}/routing`), or `None` when it
    /// has none.
    pub async fn routing(&self, service: &str) -> Result<Option<Routing>, ClientError> {
        let url = self.routing_url(service, "routing")?;
        match self.send(self.http.get(url)).await {
            Ok(res) => Self::decode(res).await.map(Some),
            Err(ClientError::Problem { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Sets (or replaces) the routing policy of `service`: `policy` is the body of
    /// `PUT /services/{service}/routing` (`{"weights": {...}, "rollback": {...}}`). Returns the
    /// stored document.
    pub async fn put_routing(&self, service: &str, policy: &Value) -> Result<Routing, ClientError> {
        let url = self.routing_url(service, "routing")?;
        Self::decode(self.send(self.http.put(url).json(policy)).await?).await
    }

    /// How the tool catalog of `service` changed from version `from` to `to`
    /// (`GET /services/{service}/diff`): tools added, removed and changed, each change breaking
    /// or compatible. A `404` problem when no instance of either version has been listed.
    pub async fn diff(
        &self,
        service: &str,
        from: &Version,
        to: &Version,
    ) -> Result<VersionDiff, ClientError> {
        let mut url = self.routing_url(service, "diff")?;
        url.query_pairs_mut()
            .append_pair("from", &from.to_string())
            .append_pair("to", &to.to_string());
        Self::decode(self.send(self.http.get(url)).await?).await
    }

    /// Deletes the routing policy of `service`; `false` when it had none.
    pub async fn delete_routing(&self, service: &str) -> Result<bool, ClientError> {
        let url = self.routing_url(service, "routing")?;
        match self.send(self.http.delete(url)).await {
            Ok(_) => Ok(true),
            Err(ClientError::Problem { status: 404, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Rolls `version` of `service` back (`POST /services/{service}/routing/rollback`): its
    /// weight goes to the heaviest other version, and `reason` is recorded. Returns the updated
    /// document; a `404` problem when the service has no policy.
    pub async fn rollback(
        &self,
        service: &str,
        version: &Version,
        reason: &str,
    ) -> Result<Routing, ClientError> {
        self.rollback_with(service, version, reason, false).await
    }

    /// [`rollback`](Self::rollback), with `force`: roll back even when the versions left with
    /// traffic were rolled back themselves or have no instance up (without it, a `409` problem
    /// naming them).
    pub async fn rollback_with(
        &self,
        service: &str,
        version: &Version,
        reason: &str,
        force: bool,
    ) -> Result<Routing, ClientError> {
        let mut url = self.routing_url(service, "routing/rollback")?;
        if force {
            url.query_pairs_mut().append_pair("force", "true");
        }
        let body = serde_json::json!({ "version": version, "reason": reason });
        Self::decode(self.send(self.http.post(url).json(&body)).await?).await
    }

    /// Reports a gateway replica's canary counts of `service`
    /// (`POST /services/{service}/routing/observations`); returns every replica's sum over the
    /// rollback window. A `404` problem when the service has no policy (or the registry
    /// predates the route).
    pub async fn report_observations(
        &self,
        service: &str,
        report: &mcp_fleet_model::Observations,
    ) -> Result<mcp_fleet_model::ObservedTotals, ClientError> {
        let url = self.routing_url(service, "routing/observations")?;
        Self::decode(self.send(self.http.post(url).json(report)).await?).await
    }

    /// Tools of the fleet matching `search` (`GET /tools`), from the registry's catalog: no
    /// server is connected to.
    pub async fn search_tools(&self, search: &ToolSearch) -> Result<ToolPage, ClientError> {
        let mut url = self.url("tools")?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(text) = search.q.as_deref().filter(|t| !t.trim().is_empty()) {
                q.append_pair("q", text);
            }
            if !search.tags.is_empty() {
                q.append_pair("tags", &search.tags.join(","));
            }
            if let Some(service) = &search.service {
                q.append_pair("service", service);
            }
            if let Some(status) = &search.status {
                q.append_pair("status", status);
            }
            if let Some(n) = search.limit {
                q.append_pair("limit", &n.to_string());
            }
            if let Some(c) = &search.cursor {
                q.append_pair("cursor", c);
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        Self::decode(self.send(self.http.get(url)).await?).await
    }

    /// What server `id` listed at its current version (`GET /servers/{id}/tools`): empty, with
    /// `fetched_at` `None`, until the registry has listed it; `None` when there is no such
    /// entry (or the registry has no catalog).
    pub async fn server_tools(&self, id: &str) -> Result<Option<ServerCatalog>, ClientError> {
        let url = self.url(&format!("servers/{id}/tools"))?;
        match self.send(self.http.get(url)).await {
            Ok(res) => Self::decode(res).await.map(Some),
            Err(ClientError::Problem { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Asks the registry to list server `id` again now (`POST /servers/{id}/tools/refresh`):
    /// its catalog once listed; `None` when there is no such entry.
    pub async fn refresh_tools(&self, id: &str) -> Result<Option<ServerCatalog>, ClientError> {
        let url = self.url(&format!("servers/{id}/tools/refresh"))?;
        match self.send(self.http.post(url)).await {
            Ok(res) => Self::decode(res).await.map(Some),
            Err(ClientError::Problem { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The tool hashes trusted for `service`, per version and tool
    /// (`GET /services/{service}/tools/pins`).
    pub async fn tool_pins(&self, service: &str) -> Result<ToolPins, ClientError> {
        let url = self.routing_url(service, "tools/pins")?;
        Self::decode(self.send(self.http.get(url)).await?).await
    }

    /// Trusts `tool`'s current content at every version of `service` that lists it
    /// (`POST /services/{service}/tools/accept`, scope `routing:write`), with `reason` recorded
    /// in the registry's log; returns the pins set. A `404` problem when no listing has the tool.
    pub async fn accept_tool(
        &self,
        service: &str,
        tool: &str,
        reason: Option<&str>,
    ) -> Result<ToolPins, ClientError> {
        let url = self.routing_url(service, "tools/accept")?;
        let mut body = serde_json::json!({ "tool": tool });
        if let Some(reason) = reason {
            body["reason"] = Value::String(reason.to_owned());
        }
        Self::decode(self.send(self.http.post(url).json(&body)).await?).await
    }

    /// The routing policy of `service` as Istio manifests (`GET /services/{service}/istio`): a
    /// `VirtualService` and a `DestinationRule`, as YAML.
    pub async fn istio(&self, service: &str) -> Result<String, ClientError> {
        let url = self.routing_url(service, "istio")?;
        let res = self.send(self.http.get(url)).await?;
        res.text()
            .await
            .map_err(|e| ClientError::Decode(root_cause(&e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        assert!(RegistryClient::new("ftp://x").is_err());
        assert!(RegistryClient::new("not a url").is_err());
        let c = RegistryClient::new("http://127.0.0.1:4000/prefix").expect("valid");
        assert_eq!(c.url("servers").expect("join").path(), "/prefix/servers");
        assert_eq!(c.base_url(), "http://127.0.0.1:4000/prefix");
    }

    #[tokio::test]
    async fn refused_connection_reads_as_unreachable() {
        // Bind then drop: nothing listens on that port afterwards.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let c = RegistryClient::new(&format!("http://127.0.0.1:{port}")).expect("client");
        let err = c.status().await.expect_err("nothing listens");
        let text = err.to_string();
        assert!(
            text.starts_with("cannot reach registry at http://127.0.0.1:"),
            "{text}"
        );
        assert!(text.to_lowercase().contains("refused"), "{text}");
    }
}
