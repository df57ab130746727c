//! The OAuth 2.0 client-credentials grant against one token endpoint, with its token cache.

use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde::Deserialize;

use super::*;

/// An access token and when to stop using it.
pub(super) struct CachedToken {
    pub(super) token: String,
    /// Shortly before the token expires; `None` when the endpoint gave no lifetime (then the
    /// token is used until a server refuses it).
    pub(super) refresh_at: Option<Instant>,
}

/// The client-credentials grant against one token endpoint, for one client.
pub(crate) struct OAuth2Client {
    pub(super) http: reqwest::Client,
    pub(super) endpoint: String,
    pub(super) credentials: ClientCredentials,
    /// Held across the token request, so concurrent connections wait for one fetch.
    pub(super) cached: tokio::sync::Mutex<Option<CachedToken>>,
}

#[derive(Deserialize)]
pub(super) struct TokenResponse {
    pub(super) access_token: String,
    #[serde(default)]
    pub(super) token_type: Option<String>,
    #[serde(default)]
    pub(super) expires_in: Option<u64>,
}

#[derive(Deserialize)]
pub(super) struct TokenErrorResponse {
    #[serde(default)]
    pub(super) error: Option<String>,
    #[serde(default)]
    pub(super) error_description: Option<String>,
}

/// `grant_type=client_credentials[&scope=…]`, form-encoded.
pub(super) fn token_request_body(scope: Option<&str>) -> String {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", "client_credentials");
    if let Some(scope) = scope {
        form.append_pair("scope", scope);
    }
    form.finish()
}

/// How long before expiry a token is replaced: a tenth of its lifetime, at most a minute.
pub(super) fn refresh_margin(lifetime: Duration) -> Duration {
    (lifetime / 10).min(Duration::from_secs(60))
}

impl OAuth2Client {
    /// The cached token unless it is about to expire or is `rejected`; else a new one.
    pub(super) async fn token(&self, rejected: Option<&str>) -> Result<String, AuthError> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref() {
            let fresh = c.refresh_at.is_none_or(|at| Instant::now() < at);
            if fresh && Some(c.token.as_str()) != rejected {
                return Ok(c.token.clone());
            }
        }
        let token = self.fetch().await?;
        let value = token.token.clone();
        *cached = Some(token);
        Ok(value)
    }

    pub(super) async fn fetch(&self) -> Result<CachedToken, AuthError> {
        // RFC 6749 §2.3.1: the id and secret are form-encoded before going into Basic auth.
        let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let request = self
            .http
            .post(&self.endpoint)
            .basic_auth(
                encode(&self.credentials.client_id),
                Some(encode(&self.credentials.client_secret)),
            )
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ACCEPT, "application/json")
            .timeout(TOKEN_TIMEOUT)
            .body(token_request_body(self.credentials.scope.as_deref()));
        let started = Instant::now();
        let unreachable = |e: reqwest::Error| AuthError::TokenEndpointUnreachable {
            endpoint: self.endpoint.clone(),
            reason: crate::error::chain_line(&e),
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let body = response.bytes().await.map_err(unreachable)?;
        let bad = |reason: String| AuthError::BadTokenResponse {
            endpoint: self.endpoint.clone(),
            reason,
        };
        if !status.is_success() {
            if status.is_client_error() {
                let parsed: Option<TokenErrorResponse> = serde_json::from_slice(&body).ok();
                let (error, description) = parsed
                    .map(|p| (p.error, p.error_description))
                    .unwrap_or_default();
                return Err(AuthError::TokenRefused {
                    endpoint: self.endpoint.clone(),
                    client_id: self.credentials.client_id.clone(),
                    status: status.as_u16(),
                    error,
                    description,
                });
            }
            return Err(bad(format!("HTTP {status}")));
        }
        let token: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| bad(format!("not an OAuth 2.0 token response ({e})")))?;
        if let Some(kind) = &token.token_type
            && !kind.eq_ignore_ascii_case("bearer")
        {
            return Err(bad(format!("token_type {kind:?}, expected \"Bearer\"")));
        }
        if token.access_token.is_empty() {
            return Err(bad("empty access_token".into()));
        }
        let refresh_at = token.expires_in.map(|secs| {
            let lifetime = Duration::from_secs(secs);
            started + lifetime.saturating_sub(refresh_margin(lifetime))
        });
        tracing::debug!(endpoint = %self.endpoint, expires_in = ?token.expires_in, "OAuth 2.0 token obtained");
        Ok(CachedToken {
            token: token.access_token,
            refresh_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_margin_is_a_tenth_up_to_a_minute() {
        let cases = [(3600, 60), (300, 30), (10, 1), (0, 0)];
        for (lifetime, want) in cases {
            assert_eq!(
                refresh_margin(Duration::from_secs(lifetime)),
                Duration::from_secs(want),
                "{lifetime}"
            );
        }
    }
}
