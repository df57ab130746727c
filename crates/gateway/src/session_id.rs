//! Session ids that carry their session: what a replica needs to take up a session another
//! replica opened (its protocol version, client, and versions pinned per service), sealed with
//! AES-256-GCM under a key the replicas share (`--session-key`), so no shared storage is needed
//! and a client can neither read nor forge one.
//!
//! An id is `base64url(nonce ‖ ciphertext ‖ tag)` of a small JSON document ([`Claims`]).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use rmcp::model::{ClientCapabilities, Implementation, InitializeRequestParams, ProtocolVersion};
use serde::{Deserialize, Serialize};

/// Bytes of a session key.
const KEY_BYTES: usize = 32;
/// Bound to every sealed id: a sealed value of another purpose never opens as a session.
const AAD: &[u8] = b"mcp-fleet gateway session id v1";
/// Longest id looked at; longer header values are malformed without decoding them.
const MAX_ID_CHARS: usize = 4096;
/// Client capabilities larger than this (serialized) are not carried: the gateway asks nothing
/// of its clients, so it keeps the id short instead.
const MAX_CAPABILITIES_BYTES: usize = 1024;
/// Longest client name or version carried.
const MAX_CLIENT_CHARS: usize = 128;
/// Services whose pinned version an id carries at most; others are drawn again from the
/// session's seed, which gives the same version while the policy is unchanged.
pub(crate) const MAX_PINS: usize = 64;

/// The key that seals session ids: 32 bytes, shared by every replica of a gateway.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionKey([u8; KEY_BYTES]);

impl SessionKey {
    /// A random key: sessions then live and die with this process.
    pub fn random() -> Self {
        let mut key = [0u8; KEY_BYTES];
        aws_lc_rs::rand::fill(&mut key).expect("the platform's random number generator");
        Self(key)
    }
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionKey(…)")
    }
}

/// Why a session key was refused.
#[derive(Debug, thiserror::Error)]
#[error(
    "the session key must be {KEY_BYTES} bytes, base64-encoded (e.g. `openssl rand -base64 32`): {0}"
)]
pub struct SessionKeyError(String);

impl FromStr for SessionKey {
    type Err = SessionKeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let decoded = [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(s).ok())
            .ok_or_else(|| SessionKeyError("not base64".to_owned()))?;
        let key: [u8; KEY_BYTES] = decoded
            .try_into()
            .map_err(|d: Vec<u8>| SessionKeyError(format!("it decodes to {} bytes", d.len())))?;
        Ok(Self(key))
    }
}

/// What a session id carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Claims {
    /// Random per session: ids are unique, and versions drawn for the session are the same on
    /// every replica (see [`Claims::roll`]).
    #[serde(rename = "s")]
    pub(crate) seed: u64,
    /// When it was issued (seconds since the Unix epoch).
    #[serde(rename = "t")]
    pub(crate) issued: u64,
    /// The protocol version the client asked for in `initialize`.
    #[serde(rename = "p")]
    pub(crate) protocol_version: String,
    /// The client's name and version.
    #[serde(rename = "c")]
    pub(crate) client: (String, String),
    /// The client's capabilities, when small.
    #[serde(rename = "k", default)]
    pub(crate) capabilities: Option<ClientCapabilities>,
    /// Service → the version the session is pinned to.
    #[serde(rename = "r", default)]
    pub(crate) pins: BTreeMap<String, String>,
}

impl Claims {
    /// The claims of a session opened by `params` now, drawing from `seed`, pinned to `pins`.
    pub(crate) fn new(
        params: &InitializeRequestParams,
        seed: u64,
        pins: BTreeMap<String, String>,
    ) -> Self {
        let capabilities = serde_json::to_vec(&params.capabilities)
            .ok()
            .filter(|c| c.len() <= MAX_CAPABILITIES_BYTES)
            .map(|_| params.capabilities.clone());
        let clip = |s: &str| s.chars().take(MAX_CLIENT_CHARS).collect::<String>();
        Self {
            seed,
            issued: now_secs(),
            protocol_version: params.protocol_version.to_string(),
            client: (
                clip(&params.client_info.name),
                clip(&params.client_info.version),
            ),
            capabilities,
            pins,
        }
    }

    /// The `initialize` params to replay when a replica takes the session up.
    pub(crate) fn initialize_params(&self) -> InitializeRequestParams {
        let version: ProtocolVersion =
            serde_json::from_value(serde_json::Value::String(self.protocol_version.clone()))
                .unwrap_or_default();
        InitializeRequestParams::new(
            self.capabilities.clone().unwrap_or_default(),
            Implementation::new(self.client.0.clone(), self.client.1.clone()),
        )
        .with_protocol_version(version)
    }

    /// The session's draw for `service`: the same on every replica.
    pub(crate) fn roll(seed: u64, service: &str) -> u32 {
        // FNV-1a: stable across processes and builds, unlike std's randomly keyed hasher.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for b in seed.to_le_bytes().iter().chain(service.as_bytes()) {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        // Folding 64 bits into 32.
        (hash ^ (hash >> 32)) as u32
    }
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Why a session id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refused {
    /// Not something this gateway could have issued.
    #[error("the Mcp-Session-Id header is not a session id of this gateway (malformed)")]
    Malformed,
    /// Well formed, but not sealed under this gateway's key: altered, or issued under another
    /// key.
    #[error(
        "session not found: its id was not issued under this gateway's session key (altered, or \
         from a gateway with another --session-key); initialize a new session"
    )]
    Foreign,
    /// Issued too long ago.
    #[error("session expired (sessions last {0} s); initialize a new session")]
    Expired(u64),
    /// Closed by its client (`DELETE`) on this replica.
    #[error("session not found: it was closed; initialize a new session")]
    Closed,
}

/// Seals and opens session ids.
pub(crate) struct Sealer {
    key: RandomizedNonceKey,
    ttl: Duration,
}

impl Sealer {
    pub(crate) fn new(key: &SessionKey, ttl: Duration) -> Self {
        let key = RandomizedNonceKey::new(&AES_256_GCM, &key.0).expect("a 32-byte AES-256 key");
        Self { key, ttl }
    }

    /// The id carrying `claims`.
    pub(crate) fn seal(&self, claims: &Claims) -> String {
        let mut sealed = serde_json::to_vec(claims).expect("claims serialize");
        // AES-GCM sealing fails only on inputs over 64 GiB.
        let nonce = self
            .key
            .seal_in_place_append_tag(Aad::from(AAD), &mut sealed)
            .expect("sealing a short message");
        let mut id = Vec::with_capacity(NONCE_LEN + sealed.len());
        id.extend_from_slice(nonce.as_ref());
        id.extend_from_slice(&sealed);
        URL_SAFE_NO_PAD.encode(id)
    }

    /// The claims of `id`, if this gateway's key sealed it and it has not expired.
    pub(crate) fn open(&self, id: &str) -> Result<Claims, Refused> {
        if id.len() > MAX_ID_CHARS {
            return Err(Refused::Malformed);
        }
        let mut bytes = URL_SAFE_NO_PAD.decode(id).map_err(|_| Refused::Malformed)?;
        if bytes.len() <= NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(Refused::Malformed);
        }
        let (nonce, sealed) = bytes.split_at_mut(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| Refused::Malformed)?;
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(AAD), sealed)
            .map_err(|_| Refused::Foreign)?;
        let claims: Claims = serde_json::from_slice(plain).map_err(|_| Refused::Foreign)?;
        if now_secs().saturating_sub(claims.issued) > self.ttl.as_secs() {
            return Err(Refused::Expired(self.ttl.as_secs()));
        }
        Ok(claims)
    }

    /// When a session issued at `issued` expires (seconds since the Unix epoch).
    pub(crate) fn expiry(&self, issued: u64) -> u64 {
        issued.saturating_add(self.ttl.as_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        let params = InitializeRequestParams::new(
            ClientCapabilities::default(),
            Implementation::new("client", "1.0"),
        )
        .with_protocol_version(ProtocolVersion::V_2025_06_18);
        let pins = BTreeMap::from([("catalog".to_owned(), "2.1.0".to_owned())]);
        Claims::new(&params, fastrand::u64(..), pins)
    }

    #[test]
    fn an_id_opens_under_its_key_only() {
        let key = SessionKey::random();
        let sealer = Sealer::new(&key, Duration::from_secs(60));
        let claims = claims();
        let id = sealer.seal(&claims);
        assert!(id.len() < 400, "{} characters", id.len());
        assert!(id.bytes().all(|b| (0x21..=0x7e).contains(&b)), "{id}");
        assert_eq!(sealer.open(&id), Ok(claims.clone()));
        // Two sessions of one client still get different ids.
        assert_ne!(sealer.seal(&claims), id);

        let other = Sealer::new(&SessionKey::random(), Duration::from_secs(60));
        assert_eq!(other.open(&id), Err(Refused::Foreign));

        // Any flipped bit is noticed.
        let mut bytes = URL_SAFE_NO_PAD.decode(&id).expect("base64");
        for i in [0, NONCE_LEN, bytes.len() - 1] {
            bytes[i] ^= 1;
            let altered = URL_SAFE_NO_PAD.encode(&bytes);
            assert_eq!(sealer.open(&altered), Err(Refused::Foreign), "byte {i}");
            bytes[i] ^= 1;
        }
        for malformed in ["", "not a session", "c2hvcnQ", &"A".repeat(5000)] {
            assert_eq!(
                sealer.open(malformed),
                Err(Refused::Malformed),
                "{malformed}"
            );
        }
    }

    #[test]
    fn ids_expire() {
        let sealer = Sealer::new(&SessionKey::random(), Duration::from_secs(60));
        let mut claims = claims();
        claims.issued -= 61;
        assert_eq!(
            sealer.open(&sealer.seal(&claims)),
            Err(Refused::Expired(60))
        );
        claims.issued += 2;
        assert!(sealer.open(&sealer.seal(&claims)).is_ok());
    }

    #[test]
    fn keys_are_32_bytes_of_base64() {
        let standard = STANDARD.encode([7u8; 32]);
        let url = URL_SAFE_NO_PAD.encode([0xfbu8; 32]);
        assert_eq!(
            standard.parse::<SessionKey>().expect("key"),
            SessionKey([7; 32])
        );
        assert_eq!(
            format!(" {url}\n").parse::<SessionKey>().expect("key"),
            SessionKey([0xfb; 32])
        );
        for bad in ["", "not base64!", &STANDARD.encode([1u8; 16])] {
            let error = bad.parse::<SessionKey>().expect_err(bad).to_string();
            assert!(error.contains("32 bytes, base64-encoded"), "{error}");
        }
        assert_eq!(format!("{:?}", SessionKey([7; 32])), "SessionKey(…)");
    }

    #[test]
    fn the_initialize_replay_keeps_what_the_client_sent() {
        let claims = claims();
        let params = claims.initialize_params();
        assert_eq!(params.protocol_version, ProtocolVersion::V_2025_06_18);
        assert_eq!(params.client_info.name, "client");
        assert_eq!(params.client_info.version, "1.0");
        // Draws are stable, and differ by service.
        assert_eq!(Claims::roll(1, "a"), Claims::roll(1, "a"));
        assert_ne!(Claims::roll(1, "a"), Claims::roll(1, "b"));
        assert_ne!(Claims::roll(1, "a"), Claims::roll(2, "a"));
    }
}
