//! OIDC / workload identity with a key pair made here and a local JWKS server: a valid token is
//! accepted and mapped by the policy; a wrong audience or issuer, an expired or not-yet-valid
//! token and an unknown key are refused; a rotated key is picked up.

use std::sync::{Arc, Mutex};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use mcp_fleet_registry::Config;
use mcp_fleet_registry::auth::{AuthConfig, AuthMode, OidcConfig, OidcPolicy};
use reqwest::Method;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::common::{seed_body, start_with};

const ISSUER: &str = "https://issuer.test";
const AUDIENCE: &str = "mcp-fleet";

/// An Ed25519 signing key with its id.
struct Key {
    kid: String,
    pkcs8: Vec<u8>,
    public: Vec<u8>,
}

impl Key {
    fn new(kid: &str) -> Self {
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("keygen");
        let pair = Ed25519KeyPair::from_pkcs8(doc.as_ref()).expect("key pair");
        Self {
            kid: kid.into(),
            pkcs8: doc.as_ref().to_vec(),
            public: pair.public_key().as_ref().to_vec(),
        }
    }

    fn jwk(&self) -> Value {
        json!({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": self.kid,
               "x": URL_SAFE_NO_PAD.encode(&self.public)})
    }

    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        encode(&header, claims, &EncodingKey::from_ed_der(&self.pkcs8)).expect("sign")
    }
}

/// Serves `{"keys": [...]}` from what `keys` holds now; returns the JWKS URL.
async fn jwks_server(keys: Arc<Mutex<Vec<Value>>>, stop: CancellationToken) -> String {
    let app = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            let keys = keys.clone();
            async move { axum::Json(json!({"keys": *keys.lock().expect("lock")})) }
        }),
    );
    let url = format!("{}/jwks", mcp_fleet_test_support::serve(app, stop).await);
    url
}

fn claims(sub: &str, aud: &str, iss: &str, exp_in: i64, nbf_in: i64) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({"sub": sub, "aud": aud, "iss": iss, "exp": now + exp_in, "nbf": now + nbf_in,
           "iat": now})
}

#[tokio::test]
async fn workload_identities_are_verified_and_mapped() {
    let stop = CancellationToken::new();
    let k1 = Key::new("k1");
    let keys = Arc::new(Mutex::new(vec![k1.jwk()]));
    let jwks = jwks_server(keys.clone(), stop.clone()).await;
    let policy = OidcPolicy::from_json(
        r#"{"claim": "sub", "rules": [
            {"match": "system:serviceaccount:payments:*", "scopes": ["servers:write"],
             "ids": ["payments-*"]}]}"#,
    )
    .expect("policy");
    let config = Config {
        auth: AuthConfig {
            mode: AuthMode::Oidc,
            oidc: Some(OidcConfig {
                issuer: ISSUER.into(),
                audience: AUDIENCE.into(),
                jwks_url: Some(jwks),
                policy,
            }),
            ..AuthConfig::default()
        },
        ..Config::default()
    };
    let reg = start_with(mcp_fleet_test_support::sqlite(), config).await;
    let sa = "system:serviceaccount:payments:api";
    let body = seed_body("payments-api", &["pay"]);
    let post = |token: String| {
        let reg = &reg;
        let body = body.clone();
        async move {
            let res = reg
                .send_as(Method::POST, "/servers", Some(&token), Some(&body))
                .await;
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap_or(Value::Null))
        }
    };

    // Valid: accepted, and the subject is the writer.
    let (status, p) = post(k1.sign(&claims(sa, AUDIENCE, ISSUER, 300, -10))).await;
    assert_eq!(status, 201, "{p}");
    let (_, entry) = reg.get("/servers/payments-api").await;
    assert_eq!(entry["updatedBy"], format!("oidc:{sa}"));

    // Refused, each with a reason.
    let other = Key::new("k-unknown");
    for (token, why) in [
        (
            k1.sign(&claims(sa, "someone-else", ISSUER, 300, -10)),
            "audience",
        ),
        (
            k1.sign(&claims(sa, AUDIENCE, "https://evil.test", 300, -10)),
            "issuer",
        ),
        (
            k1.sign(&claims(sa, AUDIENCE, ISSUER, -120, -300)),
            "expired",
        ),
        (
            k1.sign(&claims(sa, AUDIENCE, ISSUER, 600, 300)),
            "not valid yet",
        ),
        (
            other.sign(&claims(sa, AUDIENCE, ISSUER, 300, -10)),
            "does not publish",
        ),
    ] {
        let (status, p) = post(token).await;
        assert_eq!(status, 401, "{why}: {p}");
        assert!(
            p["detail"].as_str().unwrap_or_default().contains(why),
            "{why}: {p}"
        );
    }
    // A forged signature: k1's id, another key.
    let forged = {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some("k1".into());
        encode(
            &header,
            &claims(sa, AUDIENCE, ISSUER, 300, -10),
            &EncodingKey::from_ed_der(&other.pkcs8),
        )
        .expect("sign")
    };
    assert_eq!(post(forged).await.0, 401);
    // Valid, but no rule grants anything to this subject: 403.
    let (status, p) = post(k1.sign(&claims(
        "system:serviceaccount:catalog:api",
        AUDIENCE,
        ISSUER,
        300,
        -10,
    )))
    .await;
    assert_eq!(status, 403, "{p}");

    // Rotation: the issuer now signs with k2 and publishes only k2.
    let k2 = Key::new("k2");
    *keys.lock().expect("lock") = vec![k2.jwk()];
    let rotated = k2.sign(&claims(sa, AUDIENCE, ISSUER, 300, -10));
    let accepted = mcp_fleet_test_support::eventually(
        std::time::Duration::from_secs(10),
        "the rotated key to be accepted",
        || {
            let token = rotated.clone();
            let post = &post;
            async move { (post(token).await.0 == 200).then_some(()) }
        },
    )
    .await;
    assert_eq!(accepted, ());
    // Nothing without a credential.
    assert_eq!(reg.post(&body).await.0, 401);
    stop.cancel();
}
