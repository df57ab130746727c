//! The official MCP Registry's v0.1 read API (`GET /v0.1/servers`) as Rust calls, for any
//! registry serving it: the public one, another mcp-fleet, a company's own.
//!
//! Records are returned as JSON, one by one, so that a caller can report a record it cannot
//! use and go on with the others.

use std::collections::HashSet;

use serde::Deserialize;
use serde_json::Value;

use crate::registry_client::{ClientError, RegistryClient};

/// Most pages [`RegistryClient::v01_servers_all`] reads (at 100 a page, 100,000 records).
pub const MAX_V01_PAGES: usize = 1000;

/// Filters of `GET /v0.1/servers`.
#[derive(Debug, Clone, Default)]
pub struct V01Query {
    /// Servers whose name contains this text (`search`).
    pub search: Option<String>,
    /// `latest`, or one exact version (`version`).
    pub version: Option<String>,
    /// Page size (`limit`).
    pub limit: Option<u32>,
}

/// One page of `GET /v0.1/servers`.
#[derive(Debug, Clone, Deserialize)]
pub struct V01Page {
    /// Each `{server, _meta}`, as sent.
    pub servers: Vec<Value>,
    /// `metadata`: where the next page starts.
    #[serde(default)]
    pub metadata: V01Metadata,
}

/// The `metadata` of a v0.1 page.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct V01Metadata {
    /// The `cursor` of the next page; absent (or empty) on the last.
    #[serde(default)]
    pub next_cursor: Option<String>,
}

impl RegistryClient {
    /// One page of `GET /v0.1/servers`, from `cursor` (the previous page's `nextCursor`).
    pub async fn v01_servers(
        &self,
        query: &V01Query,
        cursor: Option<&str>,
    ) -> Result<V01Page, ClientError> {
        let mut url = self.url("v0.1/servers")?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(search) = &query.search {
                q.append_pair("search", search);
            }
            if let Some(version) = &query.version {
                q.append_pair("version", version);
            }
            if let Some(limit) = query.limit {
                q.append_pair("limit", &limit.to_string());
            }
            if let Some(cursor) = cursor {
                q.append_pair("cursor", cursor);
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        let res = self.send(self.http.get(url)).await?;
        Self::decode(res).await
    }

    /// Every record `GET /v0.1/servers` lists, following `nextCursor` to the end: at most
    /// [`MAX_V01_PAGES`] pages, and an error when a cursor comes back (a loop).
    pub async fn v01_servers_all(&self, query: &V01Query) -> Result<Vec<Value>, ClientError> {
        let mut all = Vec::new();
        let mut seen = HashSet::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_V01_PAGES {
            let page = self.v01_servers(query, cursor.as_deref()).await?;
            all.extend(page.servers);
            match page.metadata.next_cursor.filter(|c| !c.is_empty()) {
                None => return Ok(all),
                Some(next) if !seen.insert(next.clone()) => {
                    return Err(ClientError::Decode(format!(
                        "GET /v0.1/servers sent the cursor {next:?} twice: the listing loops"
                    )));
                }
                Some(next) => cursor = Some(next),
            }
        }
        Err(ClientError::Decode(format!(
            "GET /v0.1/servers still had more after {MAX_V01_PAGES} pages"
        )))
    }
}
