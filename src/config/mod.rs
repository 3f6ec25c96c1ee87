//! One typed configuration: built-in defaults, then a TOML file, then `SWITCHBOARD_<SECTION>__<KEY>`
//! environment variables. `config/switchboard.example.toml` documents every key.

pub(crate) mod fields;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// This process's node id in every snowflake id (0..1023); give each node its own.
    pub node_id: u16,
    pub http: HttpConfig,
    pub admin: AdminConfig,
    pub auth: AuthConfig,
    pub store: StoreConfig,
    pub scylla: ScyllaConfig,
    pub limits: LimitsConfig,
    pub realtime: RealtimeConfig,
    pub chat: ChatConfig,
    pub attachments: AttachmentsConfig,
    /// What happens to a message before it is stored: contact-detail and blocked-word rules, an
    /// optional external classifier.
    #[serde(default)]
    pub moderation: crate::moderation::ModerationConfig,
    /// E-mail to recipients who stayed offline with unread messages (Brevo).
    #[serde(default)]
    pub email: crate::notify::EmailConfig,
    /// Signed events to the marketplace backend.
    #[serde(default)]
    pub webhooks: crate::notify::WebhooksConfig,
    /// Web Push to offline users' browsers.
    #[serde(default)]
    pub push: crate::notify::PushConfig,
    /// The KPIs counted as traffic flows (`analytics/`).
    #[serde(default)]
    pub analytics: crate::analytics::AnalyticsConfig,
    /// Message search (`search/`).
    #[serde(default)]
    pub search: crate::search::feed::SearchConfig,
    /// Retention of messages (`privacy/`).
    #[serde(default)]
    pub privacy: crate::privacy::PrivacyConfig,
    /// How the log is written (`telemetry.rs`).
    #[serde(default)]
    pub log: crate::telemetry::LogConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub addr: SocketAddr,
    /// Browser origins (`https://app.example.com`, exactly as a browser sends `Origin`) that may
    /// call the public API cross-origin, and from which a cookie-authenticated request is
    /// accepted. Empty (the default): no cross-origin access. A list in TOML; in the environment
    /// (`SWITCHBOARD_HTTP__ALLOWED_ORIGINS`) a comma-separated string.
    #[serde(deserialize_with = "fields::list_or_comma_separated")]
    pub allowed_origins: Vec<String>,
    /// The request header a trusted reverse proxy puts the client's address in (`x-real-ip`,
    /// or `x-forwarded-for`, whose first entry is taken). Empty (the default): the TCP peer's
    /// address, which behind a proxy is the proxy's. Only set it when every request comes
    /// through that proxy, or clients choose their own address for the per-address limits.
    pub client_ip_header: String,
    /// PEM certificate chain and private key: with both set this listener speaks TLS (HTTPS and
    /// `wss://`); with neither, plain HTTP (for a proxy that terminates TLS in front).
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    /// Seconds between checks of both listeners' certificate files for changes (a renewed
    /// certificate is then served without a restart, as on SIGHUP). 0: only SIGHUP reloads.
    pub tls_reload_check_secs: u64,
    /// Serves the Contact Provider demo (`clients/demo`) at `/demo/`. It mints dev tokens, so it
    /// is only useful with `auth.dev_tokens`; on in `config/local.toml`, off by default.
    #[serde(default)]
    pub demo: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    pub addr: SocketAddr,
    /// Static bearer token for operators. Empty: only JWTs with role `admin` are accepted.
    pub token: String,
    /// As `http.tls_cert` / `http.tls_key`, for the admin listener.
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    /// Offers `PUT /admin/v1/clock`, which sets the engine's clock (timestamps of new messages,
    /// analytics days). For tests that script a day of traffic; never in production.
    #[serde(default)]
    pub clock_control: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JwtAlgorithm {
    HS256,
    RS256,
    EdDSA,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub algorithm: JwtAlgorithm,
    /// Shared secret for HS256, at least [`MIN_HS256_SECRET_BYTES`] bytes.
    pub jwt_secret: String,
    /// PEM public key (inline text or a path to a file) for RS256 / EdDSA.
    pub jwt_public_key: String,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    /// The claim that holds the user id (`sub`; SimpleJWT uses `user_id`).
    pub user_id_claim: String,
    /// Enables `POST /api/v1/dev/tokens`. Local runs and load tests only.
    pub dev_tokens: bool,
    /// Lifetime of dev tokens, seconds.
    pub dev_token_ttl_secs: u64,
    /// The cookie whose value is read as the access token when a request carries no other
    /// (`access_token`, say). Unset (the default): cookies are ignored.
    pub cookie_name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    Embedded,
    Scylla,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    pub kind: StoreKind,
    /// Directory of the embedded store.
    pub path: PathBuf,
    /// Most writes the embedded store's committer folds into one fsync.
    pub max_batch: usize,
    /// Threads the embedded store flushes and compacts with. Few, so background work cannot take
    /// every core from the committer and the sockets on a small machine.
    pub background_threads: usize,
    /// Writes the embedded store holds queued and unanswered before it refuses more
    /// (`overloaded`), so a disk slower than the offered load sheds requests instead of growing
    /// memory without end.
    pub max_queue: usize,
}

/// The ScyllaDB store (`store.kind = "scylla"`) and `switchboard migrate`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScyllaConfig {
    /// Contact points, comma-separated `host:port` (`SWITCHBOARD_SCYLLA__URI=10.0.0.1:9042,...`);
    /// the driver discovers the rest of the cluster from them.
    pub uri: String,
    pub keyspace: String,
    /// The datacenter whose nodes serve this process (load balancing prefers them; LOCAL_QUORUM
    /// counts replicas there). Empty: no preference.
    pub local_dc: String,
    /// `migrate` creates the keyspace with this strategy and factor: `NetworkTopologyStrategy`
    /// (production) or `SimpleStrategy` (a single test node).
    pub replication_strategy: String,
    pub replication_factor: u32,
    /// A query that has no answer within this long fails (a write answers 503
    /// `store_unavailable`).
    pub request_timeout_ms: u64,
    /// How long startup waits for the cluster before giving up with exit code 69.
    pub connect_timeout_secs: u64,
    /// Writes in flight (sent to the cluster, unanswered) before more are refused with
    /// `overloaded`.
    pub max_in_flight: usize,
    /// Conversations whose records are cached in memory (hot reads: membership checks).
    pub cache_conversations: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Messages one user may send per minute, HTTP and WebSocket together. 0 turns it off.
    pub messages_per_minute: u32,
    /// How many of those may be sent at once after a quiet spell; 0 means `messages_per_minute`.
    pub messages_burst: u32,
    /// Conversations one user may start per hour. 0 turns it off.
    pub conversations_per_hour: u32,
    /// WebSocket connection attempts per client address per minute. 0 turns it off.
    pub connections_per_ip_per_minute: u32,
    /// Failed authentications (a bad, forged or refresh token; not a missing or merely expired
    /// one) per client address per minute, HTTP and WebSocket together; past it, that address
    /// gets 429 for any token until the budget refills. 0 turns it off.
    pub failed_auth_per_ip_per_minute: u32,
    pub max_text_chars: usize,
    /// Largest WebSocket frame accepted; larger ones close the socket with 1009.
    pub max_frame_bytes: usize,
    /// Largest HTTP JSON body accepted (413 beyond).
    pub max_body_bytes: u64,
    /// Events queued for one socket before it counts as too slow and is closed with 1013.
    pub socket_queue: usize,
    /// Frames one socket may have in flight (sent, not yet answered) before the server stops
    /// reading from it. This is what bounds actor mailboxes against a flooding client.
    pub socket_inflight: usize,
    /// Typing events one user may send per 10 s, HTTP and all of their sockets together. Over it,
    /// sockets drop the frame quietly and HTTP answers 429. 0 turns the limit off.
    pub typing_per_10s: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RealtimeConfig {
    /// A socket without a token in its URL or header must send `auth` within this time.
    pub auth_timeout_secs: u64,
    /// The server pings a socket that has been silent this long, and drops it after two silent
    /// intervals.
    pub ping_interval_secs: u64,
    /// A typing indicator clears itself after this long without a refresh.
    pub typing_ttl_secs: u64,
    /// A user counts as offline only after their last socket has been gone this long.
    pub presence_grace_secs: u64,
    /// Conversation actors with nothing to do stop after this long; they return on demand.
    pub conversation_idle_secs: u64,
    /// The longest an HTTP request waits for a conversation's answer before it is told to retry
    /// (503 `store_unavailable`): a stalled store must not hang requests forever.
    pub request_timeout_secs: u64,
}

/// Uploads (`POST /api/v1/attachments`) and where their bytes go.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachmentsConfig {
    /// Largest upload accepted (413 beyond), after nothing: the limit is on what the client sends.
    pub max_bytes: u64,
    pub max_per_message: usize,
    /// Uploads received at once; each may hold up to `max_bytes` in memory. Over it, 503
    /// `overloaded` with `Retry-After`.
    pub max_concurrent_uploads: usize,
    /// Uploads no message carried are removed after this long.
    pub unsent_ttl_secs: u64,
    /// Local directory for the bytes; empty means `attachments/` under `store.path`.
    pub dir: PathBuf,
    /// An S3-compatible bucket instead of the local directory (credentials from `AWS_*`).
    pub s3_bucket: String,
    pub s3_region: String,
    /// For S3-compatible services (MinIO, R2, ...): their URL; `http://` allows plain HTTP.
    pub s3_endpoint: String,
    /// Master key (base64 of 32 bytes) that wraps each file's own AES-256-GCM key. Set: files are
    /// stored encrypted; empty (the default): in the clear.
    pub encryption_key: String,
    /// Earlier master keys, kept so files written under them stay readable after a rotation.
    #[serde(deserialize_with = "fields::list_or_comma_separated")]
    pub previous_encryption_keys: Vec<String>,
    /// A `clamd` to scan every upload with before it can be attached: `host:port`, or
    /// `unix:/path` (or an absolute path) for its local socket. Empty: uploads are not scanned.
    pub clamd_addr: String,
    /// What an upload gets while clamd cannot be reached: `fail_closed` refuses it (503),
    /// `fail_open` accepts it and flags it for review.
    pub clamd_unavailable: ScanFailure,
    /// How long one scan may take, connecting included.
    pub clamd_timeout_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScanFailure {
    FailClosed,
    FailOpen,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatConfig {
    /// Starter texts shown under "Contact Provider".
    pub quick_messages: Vec<String>,
    /// How long a sender may delete a message for everyone, seconds.
    pub delete_for_everyone_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            node_id: 1,
            http: HttpConfig {
                addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
                allowed_origins: Vec::new(),
                client_ip_header: String::new(),
                tls_cert: PathBuf::new(),
                tls_key: PathBuf::new(),
                tls_reload_check_secs: 5,
                demo: false,
            },
            admin: AdminConfig {
                addr: SocketAddr::from(([127, 0, 0, 1], 9090)),
                token: String::new(),
                tls_cert: PathBuf::new(),
                tls_key: PathBuf::new(),
                clock_control: false,
            },
            auth: AuthConfig {
                algorithm: JwtAlgorithm::HS256,
                jwt_secret: String::new(),
                jwt_public_key: String::new(),
                issuer: None,
                audience: None,
                user_id_claim: "sub".into(),
                dev_tokens: false,
                dev_token_ttl_secs: 86_400,
                cookie_name: None,
            },
            store: StoreConfig {
                kind: StoreKind::Embedded,
                path: PathBuf::from("data"),
                max_batch: 4096,
                background_threads: 1,
                max_queue: 16_384,
            },
            scylla: ScyllaConfig {
                uri: "127.0.0.1:9042".into(),
                keyspace: "switchboard".into(),
                local_dc: String::new(),
                replication_strategy: "NetworkTopologyStrategy".into(),
                replication_factor: 3,
                request_timeout_ms: 5_000,
                connect_timeout_secs: 30,
                max_in_flight: 16_384,
                cache_conversations: 100_000,
            },
            limits: LimitsConfig {
                messages_per_minute: 10,
                messages_burst: 0,
                conversations_per_hour: 20,
                connections_per_ip_per_minute: 120,
                failed_auth_per_ip_per_minute: 20,
                max_text_chars: 2000,
                max_frame_bytes: 64 * 1024,
                max_body_bytes: 64 * 1024,
                socket_queue: 512,
                socket_inflight: 64,
                typing_per_10s: 20,
            },
            realtime: RealtimeConfig {
                auth_timeout_secs: 5,
                ping_interval_secs: 30,
                typing_ttl_secs: 6,
                presence_grace_secs: 10,
                conversation_idle_secs: 300,
                request_timeout_secs: 10,
            },
            chat: ChatConfig {
                quick_messages: vec![
                    "Hi! Is this service available next week?".into(),
                    "Hello, could you send me a quote for this service?".into(),
                    "Hi! What is included in this service?".into(),
                    "Hello, how soon could you start?".into(),
                ],
                delete_for_everyone_secs: 15 * 60,
            },
            attachments: AttachmentsConfig {
                max_bytes: 5 * 1024 * 1024,
                max_per_message: 10,
                max_concurrent_uploads: 32,
                unsent_ttl_secs: 24 * 60 * 60,
                dir: PathBuf::new(),
                s3_bucket: String::new(),
                s3_region: String::new(),
                s3_endpoint: String::new(),
                encryption_key: String::new(),
                previous_encryption_keys: Vec::new(),
                clamd_addr: String::new(),
                clamd_unavailable: ScanFailure::FailClosed,
                clamd_timeout_ms: 10_000,
            },
            moderation: Default::default(),
            email: Default::default(),
            webhooks: Default::default(),
            push: Default::default(),
            analytics: Default::default(),
            search: Default::default(),
            privacy: Default::default(),
            log: Default::default(),
        }
    }
}

/// Shortest HS256 secret accepted. RFC 7518 §3.2 asks for a key at least as long as the hash
/// (256 bits); a shorter shared secret can be brute-forced from any one token, after which anyone
/// can sign tokens for any user.
pub const MIN_HS256_SECRET_BYTES: usize = 32;

/// A configuration that cannot run. Reported in one line; the process exits 64 (EX_USAGE).
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

impl ScyllaConfig {
    /// The contact points of `uri`.
    pub fn nodes(&self) -> Vec<String> {
        self.uri
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .collect()
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError(m.to_string()));
        if self.nodes().is_empty() {
            return bad("scylla.uri (SWITCHBOARD_SCYLLA__URI) needs at least one host:port");
        }
        // The keyspace is spliced into CQL text (names cannot be bound), so it must be a plain
        // identifier.
        let k = &self.keyspace;
        if k.is_empty()
            || k.len() > 48
            || !k.starts_with(|c: char| c.is_ascii_alphabetic())
            || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return bad("scylla.keyspace must be a letter then letters, digits or _ (at most 48)");
        }
        if !matches!(
            self.replication_strategy.as_str(),
            "NetworkTopologyStrategy" | "SimpleStrategy"
        ) {
            return bad(
                "scylla.replication_strategy must be NetworkTopologyStrategy or SimpleStrategy",
            );
        }
        if self.replication_factor == 0 {
            return bad("scylla.replication_factor must be at least 1");
        }
        if self.request_timeout_ms == 0 || self.connect_timeout_secs == 0 {
            return bad(
                "scylla.request_timeout_ms and scylla.connect_timeout_secs must be positive",
            );
        }
        if self.max_in_flight == 0 {
            return bad("scylla.max_in_flight must be at least 1");
        }
        Ok(())
    }
}

impl Config {
    /// Defaults, then `file` if given, then the environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.exists() {
                return Err(ConfigError(format!(
                    "config file {} does not exist",
                    file.display()
                )));
            }
            figment = figment.merge(Toml::file(file));
        }
        figment = figment.merge(Env::prefixed("SWITCHBOARD_").split("__"));
        let config: Config = figment
            .extract()
            .map_err(|e| ConfigError(e.to_string().replace('\n', "; ")))?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError(m.to_string()));
        if self.node_id > 1023 {
            return bad("node_id must be between 0 and 1023");
        }
        match self.auth.algorithm {
            JwtAlgorithm::HS256 if self.auth.jwt_secret.is_empty() => {
                return bad("auth.jwt_secret (SWITCHBOARD_AUTH__JWT_SECRET) is required for HS256")
            }
            JwtAlgorithm::HS256 if self.auth.jwt_secret.len() < MIN_HS256_SECRET_BYTES => {
                return Err(ConfigError(format!(
                    "auth.jwt_secret (SWITCHBOARD_AUTH__JWT_SECRET) is {} bytes; HS256 needs at \
                     least {MIN_HS256_SECRET_BYTES}",
                    self.auth.jwt_secret.len()
                )))
            }
            JwtAlgorithm::RS256 | JwtAlgorithm::EdDSA if self.auth.jwt_public_key.is_empty() => {
                return bad("auth.jwt_public_key is required for RS256 and EdDSA")
            }
            _ => {}
        }
        if self.auth.dev_tokens && self.auth.algorithm != JwtAlgorithm::HS256 {
            return bad(
                "auth.dev_tokens needs algorithm HS256: dev tokens are signed with the secret",
            );
        }
        if self.auth.user_id_claim.is_empty() {
            return bad("auth.user_id_claim must not be empty");
        }
        for origin in &self.http.allowed_origins {
            fields::check_origin(origin).map_err(|why| {
                ConfigError(format!(
                    "http.allowed_origins (SWITCHBOARD_HTTP__ALLOWED_ORIGINS): `{origin}` {why}"
                ))
            })?;
        }
        if let Some(name) = &self.auth.cookie_name {
            if !fields::is_cookie_name(name) {
                return Err(ConfigError(format!(
                    "auth.cookie_name (SWITCHBOARD_AUTH__COOKIE_NAME) `{name}` is not a cookie \
                     name (letters, digits and !#$%&'*+-.^_`|~ only); leave it unset to turn \
                     cookie authentication off"
                )));
            }
        }
        if self.store.kind == StoreKind::Scylla {
            self.scylla.validate()?;
        }
        if self.store.max_batch == 0 {
            return bad("store.max_batch must be at least 1");
        }
        if self.store.background_threads == 0 {
            return bad("store.background_threads must be at least 1");
        }
        if self.store.max_queue == 0 {
            return bad("store.max_queue must be at least 1");
        }
        if self.limits.max_frame_bytes < 1024 {
            return bad("limits.max_frame_bytes must be at least 1024");
        }
        if self.limits.socket_queue == 0 || self.limits.socket_inflight == 0 {
            return bad("limits.socket_queue and limits.socket_inflight must be at least 1");
        }
        if self.attachments.max_bytes == 0 || self.attachments.max_per_message == 0 {
            return bad("attachments.max_bytes and attachments.max_per_message must be at least 1");
        }
        if self.limits.max_text_chars == 0 {
            return bad("limits.max_text_chars must be at least 1");
        }
        if self.realtime.auth_timeout_secs == 0 || self.realtime.ping_interval_secs == 0 {
            return bad(
                "realtime.auth_timeout_secs and realtime.ping_interval_secs must be at least 1",
            );
        }
        for (listener, cert, key) in [
            ("http", &self.http.tls_cert, &self.http.tls_key),
            ("admin", &self.admin.tls_cert, &self.admin.tls_key),
        ] {
            if cert.as_os_str().is_empty() != key.as_os_str().is_empty() {
                return Err(ConfigError(format!(
                    "{listener}.tls_cert and {listener}.tls_key go together: set both for TLS, \
                     or neither for plain HTTP"
                )));
            }
        }
        if self.attachments.clamd_timeout_ms == 0 {
            return bad("attachments.clamd_timeout_ms must be at least 1");
        }
        self.moderation.validate().map_err(ConfigError)?;
        crate::notify::config::validate(&self.email, &self.webhooks, &self.push)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
