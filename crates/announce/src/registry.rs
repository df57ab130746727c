//! The three registry calls an announcement makes: register, heartbeat, deregister.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use url::Url;

use crate::error::{AnnounceError, root_cause};

/// A registry's base URL, the HTTP client and the bearer token to send.
#[derive(Clone)]
pub(crate) struct Registry {
    base: Url,
    pub(crate) http: reqwest::Client,
    token: Option<Arc<str>>,
}

/// The token never shows in `Debug` output or logs.
impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("base", &self.base.as_str())
            .field("token", &self.token.as_ref().map(|_| "…"))
            .finish()
    }
}

impl Registry {
    /// A client of the registry at `base_url`, with a 10 s timeout per request.
    pub(crate) fn new(base_url: &str) -> Result<Self, AnnounceError> {
        let invalid = |reason: String| AnnounceError::RegistryUrl {
            url: base_url.to_owned(),
            reason,
        };
        let base = mcp_fleet_model::registry_base_url(base_url).map_err(invalid)?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| invalid(root_cause(&e)))?;
        Ok(Self {
            base,
            http,
            token: None,
        })
    }

    /// Sends `Authorization: Bearer <token>` with every request; a blank token sends none.
    pub(crate) fn set_token(&mut self, token: &str) {
        let token = token.trim();
        self.token = (!token.is_empty()).then(|| token.into());
    }

    /// The base URL, without its trailing slash.
    pub(crate) fn url(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    /// `POST /servers`.
    pub(crate) async fn register(&self, body: &Value) -> Result<(), AnnounceError> {
        let req = self.http.post(self.join("servers")?).json(body);
        self.send(req).await.map(drop)
    }

    /// `PUT /servers/{id}/heartbeat`; `false` when the registry has no such entry.
    pub(crate) async fn heartbeat(&self, id: &str) -> Result<bool, AnnounceError> {
        let req = self
            .http
            .put(self.join(&format!("servers/{id}/heartbeat"))?);
        found(self.send(req).await)
    }

    /// `DELETE /servers/{id}`; `false` when there was no such entry.
    pub(crate) async fn deregister(&self, id: &str) -> Result<bool, AnnounceError> {
        let req = self.http.delete(self.join(&format!("servers/{id}"))?);
        found(self.send(req).await)
    }

    fn join(&self, path: &str) -> Result<Url, AnnounceError> {
        self.base
            .join(path)
            .map_err(|e| AnnounceError::RegistryUrl {
                url: self.url().to_owned(),
                reason: e.to_string(),
            })
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, AnnounceError> {
        let req = match &self.token {
            Some(token) => req.bearer_auth(token),
            None => req,
        };
        let res = req.send().await.map_err(|e| AnnounceError::Unreachable {
            url: self.url().to_owned(),
            reason: root_cause(&e),
        })?;
        if res.status().is_success() {
            return Ok(res);
        }
        let status = res.status();
        let text = res.text().await.unwrap_or_default();
        Err(AnnounceError::Registry {
            status: status.as_u16(),
            detail: problem_detail(status, &text),
        })
    }
}

/// `Ok(false)` for a `404`, the other errors as they are.
fn found(res: Result<reqwest::Response, AnnounceError>) -> Result<bool, AnnounceError> {
    match res {
        Ok(_) => Ok(true),
        Err(AnnounceError::Registry { status: 404, .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// An RFC 7807 problem's `detail` (or `title`) and the fields it names, or the start of a body
/// that is not one.
fn problem_detail(status: StatusCode, text: &str) -> String {
    let Ok(Value::Object(problem)) = serde_json::from_str::<Value>(text) else {
        let start: String = text.chars().take(200).collect();
        return if start.trim().is_empty() {
            status.canonical_reason().unwrap_or("no detail").to_owned()
        } else {
            start
        };
    };
    let detail = ["detail", "title"]
        .iter()
        .find_map(|k| problem.get(*k).and_then(Value::as_str))
        .unwrap_or("no detail");
    let fields: Vec<String> = problem
        .get("errors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let field = e.get("field")?.as_str()?;
            let message = e.get("message")?.as_str()?;
            Some(format!("{field}: {message}"))
        })
        .collect();
    if fields.is_empty() {
        detail.to_owned()
    } else {
        format!("{detail} ({})", fields.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_read_as_their_detail_and_fields() {
        let bad = StatusCode::BAD_REQUEST;
        let body = r#"{"title":"Invalid","detail":"invalid registration","errors":[{"field":"ttlSeconds","message":"must be 5 to 86400"}]}"#;
        assert_eq!(
            problem_detail(bad, body),
            "invalid registration (ttlSeconds: must be 5 to 86400)"
        );
        assert_eq!(
            problem_detail(bad, r#"{"title":"Unauthorized"}"#),
            "Unauthorized"
        );
        assert_eq!(problem_detail(bad, "plain text"), "plain text");
        assert_eq!(problem_detail(StatusCode::BAD_GATEWAY, ""), "Bad Gateway");
    }
}
