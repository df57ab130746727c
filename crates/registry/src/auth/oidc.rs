//! OIDC / workload identity: JWT bearer tokens signed by the issuer's keys (its JWKS, cached,
//! fetched again when a token names a key it does not hold: rotation), checked for `iss`,
//! `aud`, `exp` and `nbf`, then mapped by one claim (a Kubernetes service account's `sub`, a CI
//! job's `repository`) to scopes and id patterns through a small policy.

use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use mcp_fleet_model::{IdPattern, Scope, glob_match};
use serde::Deserialize;
use tokio::sync::{Mutex, RwLock};

use super::Principal;

/// One rule of an [`OidcPolicy`]: callers whose claim matches `matches` get `scopes` on `ids`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcRule {
    /// A glob over the claim's value (`*` = any run of characters), e.g.
    /// `system:serviceaccount:payments:*` or `acme/payments-*`.
    #[serde(rename = "match")]
    pub matches: String,
    /// Scopes granted (`servers:write`, …).
    #[serde(deserialize_with = "scopes")]
    pub scopes: Vec<Scope>,
    /// Id patterns owned.
    #[serde(deserialize_with = "patterns")]
    pub ids: Vec<IdPattern>,
}

fn scopes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Scope>, D::Error> {
    let raw: Vec<String> = Vec::deserialize(d)?;
    raw.iter()
        .map(|s| s.parse().map_err(serde::de::Error::custom))
        .collect()
}

fn patterns<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<IdPattern>, D::Error> {
    let raw: Vec<String> = Vec::deserialize(d)?;
    raw.iter()
        .map(|s| s.parse().map_err(serde::de::Error::custom))
        .collect()
}

/// Which claim names the caller, and what each caller may do: the first matching rule wins; a
/// caller no rule matches is authenticated but may write nothing.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcPolicy {
    /// The claim to match (`sub` when not given).
    #[serde(default = "default_claim")]
    pub claim: String,
    /// The rules, in order.
    pub rules: Vec<OidcRule>,
}

fn default_claim() -> String {
    "sub".into()
}

impl OidcPolicy {
    /// Parses a policy file (JSON).
    pub fn from_json(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| format!("invalid OIDC policy: {e}"))
    }
}

/// Where tokens come from and who they are for.
#[derive(Debug, Clone, PartialEq)]
pub struct OidcConfig {
    /// The expected `iss`.
    pub issuer: String,
    /// The expected `aud`.
    pub audience: String,
    /// The JWKS URL (default: `jwks_uri` of `<issuer>/.well-known/openid-configuration`).
    pub jwks_url: Option<String>,
    /// Claim → permissions.
    pub policy: OidcPolicy,
}

/// Least time between two JWKS fetches caused by unknown key ids (a flood of forged tokens
/// must not become a flood of requests to the issuer).
const REFETCH_GAP: Duration = Duration::from_secs(1);
/// Keys older than this are fetched again before use.
const KEYS_TTL: Duration = Duration::from_secs(600);

/// Verifies JWTs of one issuer.
#[derive(Debug)]
pub struct Verifier {
    config: OidcConfig,
    http: reqwest::Client,
    keys: RwLock<Option<(Instant, JwkSet)>>,
    last_fetch: Mutex<Option<Instant>>,
}

fn algorithm(alg: KeyAlgorithm) -> Option<Algorithm> {
    Some(match alg {
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}

impl Verifier {
    /// A verifier for `config`; keys are fetched on first use.
    pub fn new(config: OidcConfig) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Self {
            config,
            http,
            keys: RwLock::new(None),
            last_fetch: Mutex::new(None),
        }
    }

    async fn jwks_url(&self) -> Result<String, String> {
        if let Some(url) = &self.config.jwks_url {
            return Ok(url.clone());
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.config.issuer.trim_end_matches('/')
        );
        let doc: serde_json::Value = self
            .http
            .get(&url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| format!("cannot read {url}: {e}"))?
            .json()
            .await
            .map_err(|e| format!("cannot read {url}: {e}"))?;
        doc.get("jwks_uri")
            .and_then(|v| v.as_str())
            .map(str::to_owned)
            .ok_or_else(|| format!("{url} has no jwks_uri"))
    }

    /// Fetches the key set, unless one was fetched less than [`REFETCH_GAP`] ago.
    async fn refresh(&self) -> Result<(), String> {
        let mut last = self.last_fetch.lock().await;
        if last.is_some_and(|t| t.elapsed() < REFETCH_GAP) {
            return Ok(());
        }
        *last = Some(Instant::now());
        let url = self.jwks_url().await?;
        let set: JwkSet = self
            .http
            .get(&url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| format!("cannot fetch the issuer's keys from {url}: {e}"))?
            .json()
            .await
            .map_err(|e| format!("the issuer's keys at {url} are not a JWKS: {e}"))?;
        *self.keys.write().await = Some((Instant::now(), set));
        Ok(())
    }

    async fn key(&self, kid: &str) -> Option<jsonwebtoken::jwk::Jwk> {
        let keys = self.keys.read().await;
        let (fetched, set) = keys.as_ref()?;
        if fetched.elapsed() > KEYS_TTL {
            return None;
        }
        set.find(kid).cloned()
    }

    /// The caller `token` names, or why it is refused (never containing the token).
    pub async fn verify(&self, token: &str) -> Result<Principal, String> {
        let header =
            decode_header(token).map_err(|_| "the bearer token is not a JWT".to_owned())?;
        let kid = header
            .kid
            .ok_or_else(|| "the JWT names no signing key (kid)".to_owned())?;
        let jwk = match self.key(&kid).await {
            Some(k) => k,
            None => {
                // Unknown key: the issuer may have rotated its keys.
                if let Err(e) = self.refresh().await {
                    tracing::warn!(error = %e, "cannot refresh the OIDC keys");
                }
                self.key(&kid).await.ok_or_else(|| {
                    format!("the JWT is signed with key {kid:?}, which the issuer does not publish")
                })?
            }
        };
        let alg = jwk
            .common
            .key_algorithm
            .and_then(algorithm)
            .or_else(|| {
                (header.alg != Algorithm::HS256
                    && header.alg != Algorithm::HS384
                    && header.alg != Algorithm::HS512)
                    .then_some(header.alg)
            })
            .ok_or_else(|| "the JWT's algorithm is not allowed".to_owned())?;
        if alg != header.alg {
            return Err("the JWT's algorithm does not match its key".into());
        }
        let key =
            DecodingKey::from_jwk(&jwk).map_err(|e| format!("unusable issuer key {kid:?}: {e}"))?;
        let mut validation = Validation::new(alg);
        validation.set_issuer(&[self.config.issuer.as_str()]);
        validation.set_audience(&[self.config.audience.as_str()]);
        validation.validate_nbf = true;
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let data = decode::<serde_json::Value>(token, &key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::ExpiredSignature => "the JWT has expired".to_owned(),
                ErrorKind::ImmatureSignature => "the JWT is not valid yet (nbf)".to_owned(),
                ErrorKind::InvalidAudience => "the JWT is for another audience".to_owned(),
                ErrorKind::InvalidIssuer => "the JWT is from another issuer".to_owned(),
                ErrorKind::InvalidSignature => "the JWT's signature is invalid".to_owned(),
                other => format!("the JWT is invalid: {other:?}"),
            }
        })?;
        let policy = &self.config.policy;
        let value = data
            .claims
            .get(&policy.claim)
            .and_then(|v| v.as_str())
            .ok_or_else(|| format!("the JWT has no string claim {:?}", policy.claim))?;
        let rule = policy.rules.iter().find(|r| glob_match(&r.matches, value));
        Ok(Principal {
            id: format!("oidc:{value}"),
            scopes: rule.map(|r| r.scopes.clone()).unwrap_or_default(),
            ids: rule.map(|r| r.ids.clone()).unwrap_or_default(),
        })
    }
}
