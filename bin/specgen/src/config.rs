//! Typed configuration: defaults, then an optional TOML file, then the
//! environment (which wins). Loaded once in `main` and passed down.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use specgen_domain::ProviderName;

/// A value that must never be printed or logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"[redacted]\"")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("[redacted]")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self(string_like(d)?))
    }
}

/// Accepts strings and also numbers or booleans, which environment values
/// that happen to look like them are parsed into.
#[derive(Deserialize)]
#[serde(untagged)]
enum StringLike {
    S(String),
    I(i64),
    F(f64),
    B(bool),
}

impl From<StringLike> for String {
    fn from(raw: StringLike) -> Self {
        match raw {
            StringLike::S(s) => s,
            StringLike::I(i) => i.to_string(),
            StringLike::F(f) => f.to_string(),
            StringLike::B(b) => b.to_string(),
        }
    }
}

fn string_like<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(StringLike::deserialize(d)?.into())
}

fn opt_string_like<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<StringLike>::deserialize(d)?.map(String::from))
}

fn opt_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ConnectionUrl>, D::Error> {
    Ok(opt_string_like(d)?.map(ConnectionUrl))
}

/// Query or key-value parameters that carry a secret (libpq's `password`
/// and `sslpassword`, and the usual names of keys and tokens).
const SECRET_PARAMETERS: [&str; 7] = ["password", "sslpassword", "pass", "pwd", "secret", "token", "key"];

/// A URL (or a libpq key-value string) that may carry a password, an
/// upstream's or an exporter's address alike: redacted when printed.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct ConnectionUrl(String);

impl ConnectionUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `scheme://user:[redacted]@host/...?password=[redacted]`: the
    /// password of the user part and every secret parameter.
    pub fn redacted(&self) -> String {
        let without_userinfo = match self.0.split_once("://") {
            Some((scheme, rest)) => match rest.rsplit_once('@') {
                Some((userinfo, host)) => match userinfo.split_once(':') {
                    Some((user, _)) => format!("{scheme}://{user}:[redacted]@{host}"),
                    None => self.0.clone(),
                },
                None => self.0.clone(),
            },
            None => self.0.clone(),
        };
        redact_parameters(&without_userinfo)
    }
}

/// Every `name=value` whose name is a [`SECRET_PARAMETERS`] one, in a
/// query string (`&`) or a key-value string (spaces), gets its value
/// replaced.
fn redact_parameters(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('=') {
        let (before, after) = rest.split_at(at);
        let name_starts = before.rfind(['?', '&', ' ', ';']).map_or(0, |i| i + 1);
        let name = before[name_starts..].trim().to_ascii_lowercase();
        out.push_str(before);
        out.push('=');
        let value_ends = after[1..].find(['&', ' ', ';', '#']).map_or(after.len(), |i| i + 1);
        if SECRET_PARAMETERS.contains(&name.as_str()) && value_ends > 1 {
            out.push_str("[redacted]");
        } else {
            out.push_str(&after[1..value_ends]);
        }
        rest = &after[value_ends..];
    }
    out.push_str(rest);
    out
}

impl fmt::Debug for ConnectionUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl Serialize for ConnectionUrl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.redacted())
    }
}

/// Every setting. Field names are the environment variables in lower case,
/// which is also how a `--config` TOML file spells them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub specgen_listen: SocketAddr,
    pub database_url: ConnectionUrl,
    pub redis_url: Option<ConnectionUrl>,
    pub jwt_secret: Option<Secret>,
    pub anthropic_api_key: Option<Secret>,
    pub anthropic_base_url: ConnectionUrl,
    pub anthropic_model: String,
    pub openai_api_key: Option<Secret>,
    #[serde(deserialize_with = "opt_url")]
    pub openai_base_url: Option<ConnectionUrl>,
    pub openai_model: String,
    #[serde(deserialize_with = "opt_string_like")]
    pub ai_default_provider: Option<String>,
    #[serde(deserialize_with = "opt_string_like")]
    pub ai_fallback_order: Option<String>,
    #[serde(deserialize_with = "opt_string_like")]
    pub specgen_cors_origins: Option<String>,
    #[serde(deserialize_with = "opt_url")]
    pub otel_exporter_otlp_endpoint: Option<ConnectionUrl>,
    pub rust_log: String,
    /// Seconds a provider may take to its first token.
    pub ai_first_token_timeout: u64,
    pub specgen_demo_provider: bool,
    /// Where the generated JWT key (and the default SQLite file) live.
    pub specgen_data_dir: PathBuf,
    /// Largest accepted request body in bytes.
    pub specgen_body_limit: usize,
    /// Connections in the store's pool.
    pub specgen_db_max_connections: usize,
    /// Seconds in-flight requests get to finish on SIGTERM/SIGINT.
    pub specgen_shutdown_timeout: u64,
    /// Seconds an access token lives.
    pub specgen_access_token_ttl: u64,
    /// Seconds a refresh token lives.
    pub specgen_refresh_token_ttl: u64,
    /// Comma-separated addresses or CIDR ranges of proxies whose
    /// `X-Forwarded-For` is believed.
    #[serde(deserialize_with = "opt_string_like")]
    pub specgen_trusted_proxies: Option<String>,
    /// Failed logins per (account, client address): `COUNT/SECONDS`.
    pub specgen_rate_login_pair: String,
    /// Failed logins per account from all addresses: `COUNT/SECONDS`.
    pub specgen_rate_login_account: String,
    /// Registrations per client address: `COUNT/SECONDS`.
    pub specgen_rate_register: String,
    /// Messages per user, HTTP and WebSocket together: `COUNT/SECONDS`.
    pub specgen_rate_messages: String,
    /// Longest silence (seconds) between two chunks of a streaming reply.
    pub specgen_ai_idle_timeout: u64,
    /// Longest a whole reply may take, in seconds.
    pub specgen_ai_total_timeout: u64,
    /// Upper bound on a reply's length, in tokens.
    pub specgen_ai_max_output_tokens: u32,
    /// Most recent messages sent to the model as context.
    pub specgen_context_messages: usize,
    /// Token budget of that context (system prompt included).
    pub specgen_context_tokens: usize,
    /// Pause between the demo provider's chunks, in milliseconds.
    pub specgen_demo_chunk_delay_ms: u64,
    /// Prefix of every Redis key, so deployments can share one Redis.
    pub specgen_redis_namespace: String,
    /// Largest WebSocket frame a client may send, in bytes (beyond: close 1008).
    pub specgen_ws_max_frame: usize,
    /// Frames a WebSocket may have queued before it is closed with 1013.
    pub specgen_ws_outbox: usize,
    /// Seconds between server pings on each WebSocket.
    pub specgen_ws_heartbeat: u64,
    /// Seconds of silence after which a WebSocket peer counts as dead.
    pub specgen_ws_peer_timeout: u64,
    /// Seconds a WebSocket has to send `authenticate` when its upgrade had no token.
    pub specgen_ws_auth_timeout: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            specgen_listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: ConnectionUrl::new("sqlite://data/specgen.db"),
            redis_url: None,
            jwt_secret: None,
            anthropic_api_key: None,
            anthropic_base_url: ConnectionUrl::new("https://api.anthropic.com"),
            anthropic_model: "claude-sonnet-4-5".into(),
            openai_api_key: None,
            openai_base_url: None,
            openai_model: "gpt-4o-mini".into(),
            ai_default_provider: None,
            ai_fallback_order: None,
            specgen_cors_origins: None,
            otel_exporter_otlp_endpoint: None,
            rust_log: "info".into(),
            ai_first_token_timeout: 10,
            specgen_demo_provider: false,
            specgen_data_dir: PathBuf::from("data"),
            specgen_body_limit: 64 * 1024,
            specgen_db_max_connections: 16,
            specgen_shutdown_timeout: 10,
            specgen_access_token_ttl: 15 * 60,
            specgen_refresh_token_ttl: 7 * 24 * 60 * 60,
            specgen_trusted_proxies: None,
            specgen_rate_login_pair: "5/900".into(),
            specgen_rate_login_account: "100/3600".into(),
            specgen_rate_register: "20/3600".into(),
            specgen_rate_messages: "30/60".into(),
            specgen_ai_idle_timeout: 30,
            specgen_ai_total_timeout: 300,
            specgen_ai_max_output_tokens: 1024,
            specgen_context_messages: 10,
            specgen_context_tokens: 4_000,
            specgen_demo_chunk_delay_ms: 25,
            specgen_redis_namespace: "specgen".into(),
            specgen_ws_max_frame: 64 * 1024,
            specgen_ws_outbox: 1024,
            specgen_ws_heartbeat: 10,
            specgen_ws_peer_timeout: 20,
            specgen_ws_auth_timeout: 10,
        }
    }
}

fn rate_rule(name: &str, raw: &str) -> anyhow::Result<specgen_ports::RateRule> {
    let parsed = raw.split_once('/').and_then(|(count, secs)| {
        let count: u32 = count.trim().parse().ok()?;
        let secs: u64 = secs.trim().parse().ok()?;
        (count > 0 && secs > 0).then(|| specgen_ports::RateRule::new(count, std::time::Duration::from_secs(secs)))
    });
    parsed.ok_or_else(|| anyhow::anyhow!("{name} must be COUNT/SECONDS with both positive, e.g. 5/900 (got {raw:?})"))
}

impl Config {
    /// The gateway's settings; zero seconds or sizes are refused, since they
    /// would close every connection at once.
    pub fn gateway(&self) -> anyhow::Result<specgen_gateway::GatewayConfig> {
        let positive = |name: &str, value: u64| {
            if value == 0 { Err(anyhow::anyhow!("{name} must be positive")) } else { Ok(value) }
        };
        Ok(specgen_gateway::GatewayConfig {
            max_frame_bytes: positive("SPECGEN_WS_MAX_FRAME", self.specgen_ws_max_frame as u64)? as usize,
            outbox_capacity: positive("SPECGEN_WS_OUTBOX", self.specgen_ws_outbox as u64)? as usize,
            heartbeat_every: std::time::Duration::from_secs(positive(
                "SPECGEN_WS_HEARTBEAT",
                self.specgen_ws_heartbeat,
            )?),
            peer_timeout: std::time::Duration::from_secs(positive(
                "SPECGEN_WS_PEER_TIMEOUT",
                self.specgen_ws_peer_timeout,
            )?),
            auth_timeout: std::time::Duration::from_secs(positive(
                "SPECGEN_WS_AUTH_TIMEOUT",
                self.specgen_ws_auth_timeout,
            )?),
            ..specgen_gateway::GatewayConfig::default()
        })
    }
}

/// The enabled providers, default first, then the fallback order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AiPlan {
    pub order: Vec<ProviderName>,
}

/// Where the data lives, decided by `DATABASE_URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Config {
    /// Defaults, then `file` if given, then the environment.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let keys = Self::keys();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        Self::load_from(file, Env::raw().only(&keys))
    }

    fn keys() -> Vec<String> {
        match serde_json::to_value(Config::default()) {
            Ok(serde_json::Value::Object(map)) => map.keys().map(|k| k.to_uppercase()).collect(),
            _ => Vec::new(),
        }
    }

    fn load_from(file: Option<&Path>, env: Env) -> anyhow::Result<Self> {
        let mut figment = Figment::new().merge(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.is_file() {
                anyhow::bail!("configuration file {} does not exist", path.display());
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        let config: Config = figment.merge(env).extract().map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        config.check()?;
        Ok(config)
    }

    /// Cross-field rules, checked once at load time.
    fn check(&self) -> anyhow::Result<()> {
        if self.jwt_secret.as_ref().is_some_and(|secret| secret.expose().len() < 32) {
            anyhow::bail!("JWT_SECRET must be at least 32 bytes");
        }
        self.database()?;
        if self.specgen_body_limit < 1024 {
            anyhow::bail!("SPECGEN_BODY_LIMIT must be at least 1024 bytes");
        }
        if self.specgen_db_max_connections == 0 {
            anyhow::bail!("SPECGEN_DB_MAX_CONNECTIONS must be at least 1");
        }
        if self.ai_first_token_timeout == 0 {
            anyhow::bail!("AI_FIRST_TOKEN_TIMEOUT must be at least 1 second");
        }
        if self.specgen_access_token_ttl == 0 || self.specgen_refresh_token_ttl <= self.specgen_access_token_ttl {
            anyhow::bail!("SPECGEN_REFRESH_TOKEN_TTL must exceed SPECGEN_ACCESS_TOKEN_TTL, which must be positive");
        }
        self.limits()?;
        self.trusted_proxies()?;
        self.ai_plan()?;
        if self.specgen_context_messages == 0 || self.specgen_context_tokens == 0 {
            anyhow::bail!("SPECGEN_CONTEXT_MESSAGES and SPECGEN_CONTEXT_TOKENS must be positive");
        }
        Ok(())
    }

    /// Which providers are enabled, and in what order they are tried.
    pub fn ai_plan(&self) -> anyhow::Result<AiPlan> {
        let claude = self.anthropic_api_key.is_some();
        let openai = self.openai_api_key.is_some() || self.openai_base_url.is_some();
        let demo = self.specgen_demo_provider || (!claude && !openai);
        let enabled: Vec<ProviderName> =
            [(ProviderName::Claude, claude), (ProviderName::Openai, openai), (ProviderName::Demo, demo)]
                .into_iter()
                .filter_map(|(name, on)| on.then_some(name))
                .collect();
        let parse_enabled = |var: &str, raw: &str| -> anyhow::Result<ProviderName> {
            let name = ProviderName::parse(raw).map_err(|e| anyhow::anyhow!("{var}: {raw:?} {e}"))?;
            anyhow::ensure!(enabled.contains(&name), "{var}: provider {name} is not configured");
            Ok(name)
        };
        let default = match self.ai_default_provider.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            Some(raw) => parse_enabled("AI_DEFAULT_PROVIDER", raw)?,
            None => enabled[0],
        };
        let mut order = vec![default];
        match self.ai_fallback_order.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            Some(list) => {
                for raw in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let name = parse_enabled("AI_FALLBACK_ORDER", raw)?;
                    if !order.contains(&name) {
                        order.push(name);
                    }
                }
            }
            None => order.extend(enabled.iter().copied().filter(|n| *n != default)),
        }
        for name in &enabled {
            if !order.contains(name) {
                order.push(*name);
            }
        }
        Ok(AiPlan { order })
    }

    /// The rate rules, parsed from `COUNT/SECONDS`.
    pub fn limits(&self) -> anyhow::Result<specgen_app::Limits> {
        Ok(specgen_app::Limits {
            login_pair: rate_rule("SPECGEN_RATE_LOGIN_PAIR", &self.specgen_rate_login_pair)?,
            login_account: rate_rule("SPECGEN_RATE_LOGIN_ACCOUNT", &self.specgen_rate_login_account)?,
            register: rate_rule("SPECGEN_RATE_REGISTER", &self.specgen_rate_register)?,
            messages: rate_rule("SPECGEN_RATE_MESSAGES", &self.specgen_rate_messages)?,
        })
    }

    pub fn trusted_proxies(&self) -> anyhow::Result<Vec<ipnet::IpNet>> {
        self.specgen_trusted_proxies
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<ipnet::IpNet>()
                    .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| anyhow::anyhow!("SPECGEN_TRUSTED_PROXIES: {s:?} is not an address or CIDR range"))
            })
            .collect()
    }

    pub fn database(&self) -> anyhow::Result<Database> {
        let url = self.database_url.expose();
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                anyhow::bail!("DATABASE_URL sqlite:// needs a file path, e.g. sqlite://data/specgen.db");
            }
            return Ok(Database::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Database::Postgres(url.to_owned()));
        }
        anyhow::bail!("DATABASE_URL must start with sqlite:// or postgres:// (got {})", self.database_url.redacted())
    }

    pub fn cors_origins(&self) -> Vec<String> {
        self.specgen_cors_origins
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use figment::Jail;

    /// Loads inside a figment jail: a temporary working directory and an
    /// environment restored afterwards.
    #[allow(clippy::result_large_err)] // figment's own error type, in tests only
    fn load_in_jail(file: Option<&str>, env: &[(&str, &str)]) -> Result<Config, String> {
        let mut result = Err(String::new());
        Jail::expect_with(|jail| {
            if let Some(text) = file {
                jail.create_file("specgen.toml", text)?;
            }
            for (k, v) in env {
                jail.set_env(k, v);
            }
            result = Config::load(file.map(|_| Path::new("specgen.toml"))).map_err(|e| e.to_string());
            Ok(())
        });
        result
    }

    #[test]
    fn defaults_are_embedded_sqlite_on_8080() {
        let config = load_in_jail(None, &[]).unwrap();
        assert_eq!(config.specgen_listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.database().unwrap(), Database::Sqlite(PathBuf::from("data/specgen.db")));
    }

    #[test]
    fn file_values_apply_env_wins_and_unknown_keys_fail() {
        let file = "database_url = \"postgres://u:pw@db/specgen\"\nai_first_token_timeout = 3\n";
        let config = load_in_jail(Some(file), &[]).unwrap();
        assert_eq!(config.database().unwrap(), Database::Postgres("postgres://u:pw@db/specgen".into()));
        assert_eq!(config.ai_first_token_timeout, 3);

        let config =
            load_in_jail(Some(file), &[("AI_FIRST_TOKEN_TIMEOUT", "7"), ("SPECGEN_LISTEN", "0.0.0.0:9000")]).unwrap();
        assert_eq!(config.ai_first_token_timeout, 7);
        assert_eq!(config.specgen_listen.to_string(), "0.0.0.0:9000");

        let err = load_in_jail(Some("no_such_key = 1\n"), &[]).unwrap_err();
        assert!(err.contains("no_such_key"), "{err}");
        // Unrelated environment variables are not configuration.
        assert!(load_in_jail(None, &[("SOME_OTHER_VAR", "x")]).is_ok());
    }

    #[test]
    fn secrets_are_redacted_when_printed() {
        let config = load_in_jail(
            None,
            &[
                ("JWT_SECRET", "0123456789abcdef0123456789abcdef"),
                ("DATABASE_URL", "postgres://u:hunter2@db/x"),
                ("OPENAI_API_KEY", "sk-live"),
                ("ANTHROPIC_BASE_URL", "https://k:anthropic-pass@proxy.example"),
                ("OPENAI_BASE_URL", "http://gw.example/v1?token=gw-token&org=7"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://u:otel-pass@collector:4318"),
                ("REDIS_URL", "redis://:redis-pass@cache:6379/0"),
            ],
        )
        .unwrap();
        let shown = serde_json::to_string(&config).unwrap() + &format!("{config:?}");
        for secret in
            ["0123456789abcdef", "hunter2", "sk-live", "anthropic-pass", "gw-token", "otel-pass", "redis-pass"]
        {
            assert!(!shown.contains(secret), "{secret} leaked: {shown}");
        }
        assert!(shown.contains("postgres://u:[redacted]@db/x"));
        assert!(shown.contains("http://gw.example/v1?token=[redacted]&org=7"), "{shown}");
    }

    #[test]
    fn passwords_in_parameters_are_redacted() {
        let shown = |raw: &str| ConnectionUrl::new(raw).redacted();
        assert_eq!(shown("postgres://bob@db:5432/x?password=s3cret"), "postgres://bob@db:5432/x?password=[redacted]");
        assert_eq!(
            shown("postgres://db/x?sslmode=require&PASSWORD=s3cret&application_name=a"),
            "postgres://db/x?sslmode=require&PASSWORD=[redacted]&application_name=a"
        );
        assert_eq!(shown("host=db user=bob password=s3cret dbname=x"), "host=db user=bob password=[redacted] dbname=x");
        assert_eq!(shown("sqlite://data/specgen.db"), "sqlite://data/specgen.db");
    }

    #[test]
    fn rate_rules_and_proxies_parse() {
        let config = load_in_jail(
            None,
            &[("SPECGEN_RATE_LOGIN_PAIR", "3/2"), ("SPECGEN_TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1")],
        )
        .unwrap();
        let limits = config.limits().unwrap();
        assert_eq!(limits.login_pair, specgen_ports::RateRule::new(3, std::time::Duration::from_secs(2)));
        assert_eq!(config.trusted_proxies().unwrap().len(), 2);
        assert!(load_in_jail(None, &[("SPECGEN_RATE_MESSAGES", "30 per minute")]).is_err());
        assert!(load_in_jail(None, &[("SPECGEN_TRUSTED_PROXIES", "not-an-ip")]).is_err());
    }

    #[test]
    fn provider_plan_follows_the_contract() {
        let plan = |env: &[(&str, &str)]| load_in_jail(None, env).map(|c| c.ai_plan().unwrap().order);
        assert_eq!(plan(&[]).unwrap(), [ProviderName::Demo], "demo when nothing is configured");
        assert_eq!(
            plan(&[("ANTHROPIC_API_KEY", "k"), ("OPENAI_BASE_URL", "http://localhost:11434/v1")]).unwrap(),
            [ProviderName::Claude, ProviderName::Openai]
        );
        assert_eq!(
            plan(&[("OPENAI_API_KEY", "k"), ("SPECGEN_DEMO_PROVIDER", "true")]).unwrap(),
            [ProviderName::Openai, ProviderName::Demo]
        );
        assert_eq!(
            plan(&[
                ("ANTHROPIC_API_KEY", "k"),
                ("OPENAI_API_KEY", "k"),
                ("AI_DEFAULT_PROVIDER", "openai"),
                ("AI_FALLBACK_ORDER", "claude")
            ])
            .unwrap(),
            [ProviderName::Openai, ProviderName::Claude]
        );
        assert!(plan(&[("AI_DEFAULT_PROVIDER", "claude")]).is_err(), "a default that is not configured");
        assert!(plan(&[("AI_FALLBACK_ORDER", "gemini")]).is_err());
    }

    #[test]
    fn cross_field_rules() {
        assert!(load_in_jail(None, &[("JWT_SECRET", "short")]).is_err());
        assert!(load_in_jail(None, &[("DATABASE_URL", "mysql://x")]).is_err());
        // A numeric-looking secret is still a string.
        let config = load_in_jail(None, &[("JWT_SECRET", "12345678901234567890123456789012345")]).unwrap();
        assert_eq!(config.jwt_secret.unwrap().expose(), "12345678901234567890123456789012345");
    }
}
