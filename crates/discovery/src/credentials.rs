//! Upstream credentials as an operator gives them: bearer tokens and OAuth 2.0 client
//! credentials per server id or per service, from `KEY=…` options or a TOML/JSON file whose
//! secrets may name environment variables. Which one a server gets: its server id's, else its
//! service's, else (OAuth 2.0 only) the default client.
//!
//! Over 500 lines with its unit tests, which sit next to the code they check (186 of 595 lines).

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::Deserialize;

use crate::auth::ClientCredentials;

/// What one server id or service is given; each entry's `auth.type` picks the one it needs.
#[derive(Clone, Default, PartialEq, Eq)]
struct Credential {
    bearer: Option<String>,
    oauth2: Option<ClientCredentials>,
}

impl Credential {
    /// `other`'s credentials replace these, kind by kind.
    fn merge(&mut self, other: Credential) {
        if other.bearer.is_some() {
            self.bearer = other.bearer;
        }
        if other.oauth2.is_some() {
            self.oauth2 = other.oauth2;
        }
    }
}

/// Credentials for upstream MCP servers, by server id and by service (never printed: `Debug`
/// shows the keys only).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct UpstreamCredentials {
    servers: HashMap<String, Credential>,
    services: HashMap<String, Credential>,
    default_oauth2: Option<ClientCredentials>,
}

impl fmt::Debug for UpstreamCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn keys(map: &HashMap<String, Credential>) -> Vec<&String> {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            keys
        }
        f.debug_struct("UpstreamCredentials")
            .field("servers", &keys(&self.servers))
            .field("services", &keys(&self.services))
            .field("default_oauth2", &self.default_oauth2)
            .finish()
    }
}

/// Which servers a credential is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialKey {
    /// The server with this id.
    Server(String),
    /// Every instance of this service.
    Service(String),
    /// As on the command line (`KEY=…`): the server with this id, and every instance of the
    /// service of this name.
    ServerOrService(String),
}

impl UpstreamCredentials {
    /// No credentials.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether nothing is configured.
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty() && self.services.is_empty() && self.default_oauth2.is_none()
    }

    fn insert(&mut self, key: CredentialKey, credential: Credential) {
        let (servers, services) = match key {
            CredentialKey::Server(id) => (Some(id), None),
            CredentialKey::Service(name) => (None, Some(name)),
            CredentialKey::ServerOrService(key) => (Some(key.clone()), Some(key)),
        };
        if let Some(id) = servers {
            self.servers
                .entry(id)
                .or_default()
                .merge(credential.clone());
        }
        if let Some(name) = services {
            self.services.entry(name).or_default().merge(credential);
        }
    }

    /// The bearer token for servers whose entry says `bearer`.
    pub fn bearer(&mut self, key: CredentialKey, token: impl Into<String>) -> &mut Self {
        let credential = Credential {
            bearer: Some(token.into()),
            oauth2: None,
        };
        self.insert(key, credential);
        self
    }

    /// The OAuth 2.0 client for servers whose entry says `oauth2`.
    pub fn oauth2(&mut self, key: CredentialKey, credentials: ClientCredentials) -> &mut Self {
        let credential = Credential {
            bearer: None,
            oauth2: Some(credentials),
        };
        self.insert(key, credential);
        self
    }

    /// The OAuth 2.0 client for every `oauth2` server without one of its own or its
    /// service's. (There is no default bearer token: it would go to every server.)
    pub fn default_oauth2(&mut self, credentials: ClientCredentials) -> &mut Self {
        self.default_oauth2 = Some(credentials);
        self
    }

    /// Adds `other`'s credentials; where both name the same key and kind, `other`'s win (the
    /// command line's over a file's).
    pub fn merge(&mut self, other: UpstreamCredentials) -> &mut Self {
        for (id, credential) in other.servers {
            self.servers.entry(id).or_default().merge(credential);
        }
        for (name, credential) in other.services {
            self.services.entry(name).or_default().merge(credential);
        }
        if other.default_oauth2.is_some() {
            self.default_oauth2 = other.default_oauth2;
        }
        self
    }

    /// The bearer token for server `id` of `service`: the server id's, else the service's.
    pub fn bearer_for(&self, id: &str, service: &str) -> Option<&str> {
        fn get<'a>(map: &'a HashMap<String, Credential>, key: &str) -> Option<&'a str> {
            map.get(key).and_then(|c| c.bearer.as_deref())
        }
        get(&self.servers, id).or_else(|| get(&self.services, service))
    }

    /// The OAuth 2.0 client for server `id` of `service`: the server id's, else the service's,
    /// else the default.
    pub fn oauth2_for(&self, id: &str, service: &str) -> Option<&ClientCredentials> {
        fn get<'a>(
            map: &'a HashMap<String, Credential>,
            key: &str,
        ) -> Option<&'a ClientCredentials> {
            map.get(key).and_then(|c| c.oauth2.as_ref())
        }
        get(&self.servers, id)
            .or_else(|| get(&self.services, service))
            .or(self.default_oauth2.as_ref())
    }

    /// Reads a credentials file: JSON when its name ends in `.json`, TOML otherwise. Secrets
    /// written as `{ env = "NAME" }` are read from the environment now.
    pub fn from_file(path: &Path) -> Result<Self, CredentialsError> {
        let text = std::fs::read_to_string(path).map_err(|e| CredentialsError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let json = path
            .extension()
            .is_some_and(|ext| ext.eq_ignore_ascii_case("json"));
        Self::parse(&text, json, &|name| std::env::var(name).ok()).map_err(|reason| {
            CredentialsError::File {
                path: path.display().to_string(),
                reason,
            }
        })
    }

    /// A credentials file's text; `env` reads the variables its secrets name.
    fn parse(text: &str, json: bool, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, String> {
        let file: CredentialsFile = if json {
            serde_json::from_str(text).map_err(|e| e.to_string())?
        } else {
            toml::from_str(text).map_err(|e| toml_error(text, &e))?
        };
        let mut credentials = Self::new();
        for (kind, sections) in [("servers", file.servers), ("services", file.services)] {
            for (key, section) in sections {
                let place = format!("[{kind}.{key}]");
                let credential = section.resolve(&place, env)?;
                if credential.bearer.is_none() && credential.oauth2.is_none() {
                    return Err(format!(
                        "{place} has neither token nor client_id and client_secret"
                    ));
                }
                let key = if kind == "servers" {
                    CredentialKey::Server(key)
                } else {
                    CredentialKey::Service(key)
                };
                credentials.insert(key, credential);
            }
        }
        if let Some(section) = file.default {
            let place = "[default]";
            if section.token.is_some() {
                return Err(format!(
                    "{place} may not hold a token: it would be sent to every bearer server; \
                     name the server or service instead"
                ));
            }
            match section.resolve(place, env)?.oauth2 {
                Some(client) => credentials.default_oauth2 = Some(client),
                None => return Err(format!("{place} needs client_id and client_secret")),
            }
        }
        Ok(credentials)
    }
}

/// Where a TOML error is and what it says, without the line itself (it may hold a secret).
fn toml_error(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim_end();
    match error.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}: {message}")
        }
        None => message.to_owned(),
    }
}

/// A credentials file, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialsFile {
    #[serde(default)]
    servers: HashMap<String, Section>,
    #[serde(default)]
    services: HashMap<String, Section>,
    #[serde(default)]
    default: Option<Section>,
}

/// One `[servers.ID]`, `[services.NAME]` or `[default]` section.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Section {
    #[serde(default)]
    token: Option<Secret>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    client_secret: Option<Secret>,
    #[serde(default)]
    scope: Option<String>,
}

impl Section {
    fn resolve(
        self,
        place: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Credential, String> {
        let bearer = match self.token {
            Some(token) => Some(token.read(&format!("{place} token"), env)?),
            None => None,
        };
        let oauth2 = match (self.client_id, self.client_secret) {
            (Some(id), Some(secret)) => {
                let secret = secret.read(&format!("{place} client_secret"), env)?;
                let client = ClientCredentials::new(id, secret);
                Some(match self.scope {
                    Some(scope) => client.with_scope(scope),
                    None => client,
                })
            }
            (None, None) if self.scope.is_none() => None,
            (None, None) => return Err(format!("{place} has a scope but no client_id")),
            (Some(_), None) => return Err(format!("{place} has client_id but no client_secret")),
            (None, Some(_)) => return Err(format!("{place} has client_secret but no client_id")),
        };
        Ok(Credential { bearer, oauth2 })
    }
}

/// A secret in a file: the value itself, or `{ env = "NAME" }`.
#[derive(Deserialize)]
#[serde(untagged)]
enum Secret {
    Value(String),
    Env {
        /// The environment variable holding the secret.
        env: String,
    },
}

impl Secret {
    /// The secret; `what` names it in errors.
    fn read(self, what: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
        let value = match self {
            Self::Value(value) => value,
            Self::Env { env: name } => env(&name).ok_or_else(|| {
                format!("{what} names environment variable {name}, which is not set")
            })?,
        };
        if value.is_empty() {
            return Err(format!("{what} is empty"));
        }
        Ok(value)
    }
}

/// Why credentials could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    /// The file could not be read.
    #[error("cannot read credentials file {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        reason: String,
    },
    /// The file is not a valid credentials file.
    #[error("credentials file {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What is wrong, and where (never the secret itself).
        reason: String,
    },
    /// An option's value does not have its form.
    #[error("{0}")]
    Malformed(String),
}

/// `--upstream-token SERVER_OR_SERVICE=TOKEN` (its `Debug` hides the token).
#[derive(Clone, PartialEq, Eq)]
pub struct TokenOption {
    /// The server id or service.
    pub key: String,
    /// The bearer token.
    pub token: String,
}

impl fmt::Debug for TokenOption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}=<redacted>", self.key)
    }
}

impl FromStr for TokenOption {
    type Err = CredentialsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // The value is never echoed: it holds a secret.
        match s.split_once('=') {
            Some((key, token)) if !key.trim().is_empty() && !token.is_empty() => Ok(Self {
                key: key.trim().to_owned(),
                token: token.to_owned(),
            }),
            _ => Err(CredentialsError::Malformed(
                "must look like SERVER_OR_SERVICE=TOKEN (a server id or service, '=', the token)"
                    .into(),
            )),
        }
    }
}

/// `--upstream-oauth2 SERVER_OR_SERVICE=CLIENT_ID:CLIENT_SECRET` (its `Debug` hides the
/// secret). The client id ends at the first `:`.
#[derive(Clone, PartialEq, Eq)]
pub struct OAuth2Option {
    /// The server id or service.
    pub key: String,
    /// The client.
    pub client: ClientCredentials,
}

impl fmt::Debug for OAuth2Option {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}:<redacted>", self.key, self.client.client_id)
    }
}

impl FromStr for OAuth2Option {
    type Err = CredentialsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parsed = s.split_once('=').and_then(|(key, client)| {
            let (id, secret) = client.split_once(':')?;
            let key = key.trim();
            (!key.is_empty() && !id.is_empty() && !secret.is_empty()).then(|| Self {
                key: key.to_owned(),
                client: ClientCredentials::new(id, secret),
            })
        });
        parsed.ok_or_else(|| {
            CredentialsError::Malformed(
                "must look like SERVER_OR_SERVICE=CLIENT_ID:CLIENT_SECRET (a server id or \
                 service, '=', the client id, ':', the secret)"
                    .into(),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, json: bool) -> Result<UpstreamCredentials, String> {
        UpstreamCredentials::parse(text, json, &|name| {
            (name == "LEDGER_SECRET").then(|| "from-env".to_owned())
        })
    }

    #[test]
    fn a_server_id_beats_its_service_and_the_default() {
        let mut creds = UpstreamCredentials::new();
        creds
            .bearer(CredentialKey::Service("vault".into()), "service-token")
            .bearer(CredentialKey::Server("vault-2".into()), "server-token")
            .oauth2(
                CredentialKey::ServerOrService("ledger".into()),
                ClientCredentials::new("ledger-client", "s"),
            )
            .default_oauth2(ClientCredentials::new("default-client", "s"));
        assert_eq!(creds.bearer_for("vault-1", "vault"), Some("service-token"));
        assert_eq!(creds.bearer_for("vault-2", "vault"), Some("server-token"));
        assert_eq!(creds.bearer_for("other", "other"), None, "no default token");
        let client = |id: &str, service: &str| {
            creds
                .oauth2_for(id, service)
                .map(|c| c.client_id.clone())
                .unwrap_or_default()
        };
        assert_eq!(client("ledger-1", "ledger"), "ledger-client");
        assert_eq!(
            client("ledger", "books"),
            "ledger-client",
            "the key as server id"
        );
        assert_eq!(client("other", "other"), "default-client");
    }

    #[test]
    fn the_command_line_beats_the_file_kind_by_kind() {
        let mut file = parse(
            r#"
            [services.vault]
            token = "file-token"
            client_id = "file-client"
            client_secret = "s"
            "#,
            false,
        )
        .expect("parses");
        let mut flags = UpstreamCredentials::new();
        flags.bearer(CredentialKey::ServerOrService("vault".into()), "flag-token");
        file.merge(flags);
        assert_eq!(file.bearer_for("vault-1", "vault"), Some("flag-token"));
        let client = file.oauth2_for("vault-1", "vault").expect("kept");
        assert_eq!(client.client_id, "file-client");
    }

    #[test]
    fn files_in_toml_and_json_name_secrets_in_the_environment() {
        let toml = r#"
            [servers.vault-1]
            token = "s3cret"

            [services.ledger]
            client_id = "agent"
            client_secret = { env = "LEDGER_SECRET" }
            scope = "tools"

            [default]
            client_id = "fallback"
            client_secret = "x"
        "#;
        let json = r#"{
            "servers": {"vault-1": {"token": "s3cret"}},
            "services": {"ledger": {"client_id": "agent",
                "client_secret": {"env": "LEDGER_SECRET"}, "scope": "tools"}},
            "default": {"client_id": "fallback", "client_secret": "x"}
        }"#;
        for (text, is_json) in [(toml, false), (json, true)] {
            let creds = parse(text, is_json).expect("parses");
            assert_eq!(creds.bearer_for("vault-1", "vault"), Some("s3cret"));
            let ledger = creds.oauth2_for("ledger-1", "ledger").expect("ledger");
            assert_eq!(
                ledger,
                &ClientCredentials::new("agent", "from-env").with_scope("tools")
            );
            let other = creds.oauth2_for("x", "y").expect("default");
            assert_eq!(other.client_id, "fallback");
        }
    }

    #[test]
    fn the_readme_example_reads_as_it_says() {
        let readme = include_str!("../../../README.md");
        let section = &readme[readme.find("#### Upstream credentials").expect("section")..];
        let start = section.find("```toml\n").expect("a TOML example") + "```toml\n".len();
        let end = start + section[start..].find("```").expect("its end");
        let creds = UpstreamCredentials::parse(&section[start..end], false, &|name| {
            Some(format!("${name}"))
        })
        .expect("parses");
        assert_eq!(creds.bearer_for("vault-1", "vault"), Some("s3cret"));
        assert_eq!(creds.bearer_for("vault-2", "vault"), Some("$VAULT_TOKEN"));
        let ledger = creds.oauth2_for("ledger-1", "ledger").expect("ledger");
        assert_eq!(ledger.client_secret, "$LEDGER_SECRET");
        assert_eq!(ledger.scope.as_deref(), Some("tools"));
        let other = creds.oauth2_for("x", "y").expect("default");
        assert_eq!(other.client_secret, "$AGENT_SECRET");
    }

    #[test]
    fn bad_files_say_what_and_where_without_the_secret() {
        let cases = [
            (
                "[services.ledger]\nclient_id = \"a\"\nclient_secret = { env = \"NOPE\" }\n",
                "[services.ledger] client_secret names environment variable NOPE, which is not set",
            ),
            (
                "[services.ledger]\nclient_id = \"a\"\n",
                "[services.ledger] has client_id but no client_secret",
            ),
            (
                "[servers.x]\nscope = \"a\"\n",
                "[servers.x] has a scope but no client_id",
            ),
            ("[servers.x]\n", "[servers.x] has neither token"),
            (
                "[default]\ntoken = \"hunter2\"\n",
                "[default] may not hold a token",
            ),
            ("[servers.x]\ntoken = \"\"\n", "[servers.x] token is empty"),
            (
                "[servers.x]\ntokn = \"hunter2\"\n",
                "line 2: unknown field `tokn`",
            ),
            ("[servers.x]\ntoken = 12\n", "line 2"),
            ("[servers.x]\ntoken = \"hunter2\n", "line 2"),
        ];
        for (text, want) in cases {
            let error = parse(text, false).expect_err(text);
            assert!(error.contains(want), "{text:?}: {error}");
            assert!(!error.contains("hunter2"), "{text:?}: {error}");
        }
    }

    #[test]
    fn options_parse_and_never_echo_or_print_secrets() {
        let token: TokenOption = "vault=a=b".parse().expect("parses");
        assert_eq!((token.key.as_str(), token.token.as_str()), ("vault", "a=b"));
        assert_eq!(format!("{token:?}"), "vault=<redacted>");
        let client: OAuth2Option = "ledger=agent:hun:ter2".parse().expect("parses");
        assert_eq!(client.key, "ledger");
        assert_eq!(client.client, ClientCredentials::new("agent", "hun:ter2"));
        assert_eq!(format!("{client:?}"), "ledger=agent:<redacted>");
        for bad in ["hunter2", "=hunter2", "vault="] {
            let e = bad.parse::<TokenOption>().expect_err(bad).to_string();
            assert!(
                e.contains("SERVER_OR_SERVICE=TOKEN") && !e.contains("hunter2"),
                "{e}"
            );
        }
        for bad in [
            "ledger=hunter2",
            "ledger=:hunter2",
            "ledger=agent:",
            "agent:hunter2",
        ] {
            let e = bad.parse::<OAuth2Option>().expect_err(bad).to_string();
            assert!(
                e.contains("CLIENT_ID:CLIENT_SECRET") && !e.contains("hunter2"),
                "{e}"
            );
        }
        let mut creds = UpstreamCredentials::new();
        creds.bearer(CredentialKey::Server("vault".into()), "hunter2");
        creds.default_oauth2(ClientCredentials::new("agent", "hunter2"));
        let text = format!("{creds:?}");
        assert!(
            text.contains("vault") && !text.contains("hunter2"),
            "{text}"
        );
    }
}
