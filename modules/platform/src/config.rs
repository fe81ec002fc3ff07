//! Configuration: the layering every boxoffice process uses, and the sections shared by
//! all modules. Module-specific sections live in their module crates; the binary
//! assembles the whole settings type and passes pieces down (there is no global).
//!
//! Layers, later wins: the compiled-in `config/default.toml` and each module's `config.toml` → `config/<profile>.toml`
//! when `BOXOFFICE_PROFILE` is set → the `--config FILE` → environment variables
//! `BOXOFFICE__SECTION__KEY`.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

use config::{Config, Environment, File, FileFormat};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// Loads settings from the layers above. Errors name the offending key.
///
/// `defaults` are the compiled-in defaults (`config/default.toml`, then each module's own).
/// `list_keys` are keys whose environment value is a comma-separated list (e.g. `modules`).
/// `mirror` names a key under which the whole merged configuration is repeated, so that a
/// field of `T` at that key reads sections that `T` does not name itself (the binary's module
/// sections): the same values, each coerced by its own field's type, as in a top-level field.
pub fn load<T: DeserializeOwned>(
    defaults: &[&str],
    profile: Option<(&str, &Path)>,
    file: Option<&Path>,
    list_keys: &[&str],
    mirror: &str,
) -> Result<T, String> {
    let invalid = |e: config::ConfigError| format!("invalid configuration: {e}");
    let mut builder = Config::builder();
    for toml in defaults {
        builder = builder.add_source(File::from_str(toml, FileFormat::Toml));
    }
    if let Some((name, dir)) = profile {
        let path = dir.join(format!("{name}.toml"));
        if !path.is_file() {
            return Err(format!("BOXOFFICE_PROFILE={name}: no profile file at {}", path.display()));
        }
        builder = builder.add_source(File::from(path));
    }
    if let Some(path) = file {
        if !path.is_file() {
            return Err(format!("--config: no such file {}", path.display()));
        }
        builder = builder.add_source(File::from(path.to_path_buf()));
    }
    builder = secret_files(builder)?;
    let mut env = Environment::with_prefix("BOXOFFICE").prefix_separator("__").separator("__").try_parsing(true);
    if !list_keys.is_empty() {
        env = env.list_separator(",");
        for key in list_keys {
            env = env.with_list_parse_key(key);
        }
    }
    let layers = builder.add_source(env).build().map_err(invalid)?;
    let whole: config::Value = layers.clone().try_deserialize().map_err(invalid)?;
    let mirrored = Config::builder().add_source(layers).set_override(mirror, whole).map_err(invalid)?;
    // An error in a mirrored section names the key as the operator writes it.
    mirrored
        .build()
        .and_then(Config::try_deserialize)
        .map_err(|e| invalid(e).replace(&format!("`{mirror}."), "`").replace(&format!(" {mirror}."), " "))
}

/// `BOXOFFICE__SECTION__KEY_FILE=PATH` sets `section.key` to the contents of the file at PATH
/// (one trailing newline dropped): how secrets mounted as files (compose and Kubernetes
/// secrets, the split script's state dir) reach the configuration without passing through the
/// environment or a command line. It ranks with the environment; both for one key is an error.
fn secret_files(
    mut builder: config::ConfigBuilder<config::builder::DefaultState>,
) -> Result<config::ConfigBuilder<config::builder::DefaultState>, String> {
    for (name, path) in std::env::vars() {
        let Some(key) = name.strip_prefix("BOXOFFICE__").and_then(|k| k.strip_suffix("_FILE")) else {
            continue;
        };
        if std::env::var_os(format!("BOXOFFICE__{key}")).is_some() {
            return Err(format!("invalid configuration: both {name} and BOXOFFICE__{key} are set"));
        }
        let value = std::fs::read_to_string(&path).map_err(|e| format!("invalid configuration: {name}={path}: {e}"))?;
        let value = value.strip_suffix('\n').unwrap_or(&value).to_owned();
        let key = key.to_lowercase().replace("__", ".");
        builder = builder.set_override(&key, value).map_err(|e| format!("invalid configuration: {name}: {e}"))?;
    }
    Ok(builder)
}

/// A secret value (key, password): never printed by `Debug` or `Display`.
#[derive(Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"[redacted]\"" })
    }
}

/// `[server]`: the HTTP listener.
#[derive(Debug, Clone, Deserialize)]
pub struct ServerSettings {
    pub bind: SocketAddr,
    /// Worker threads; 0 means one per core.
    pub workers: usize,
    /// Largest accepted request body; bigger bodies get 413.
    pub body_limit_bytes: usize,
    pub shutdown_timeout_seconds: u64,
    /// Take the client address from `X-Forwarded-For` (only behind a trusted gateway).
    pub trust_forwarded_for: bool,
    /// Requests one client address may make per minute before 429; 0 disables the budget.
    pub client_budget_per_minute: u64,
}

/// `[database]`.
#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    /// Empty: one SQLite file per module under `data_dir`. `postgres://…`: one schema per module.
    pub url: Secret,
    /// Prefix of the module schemas in PostgreSQL (`<prefix><module>`), so several
    /// deployments or test runs can share one database.
    pub schema_prefix: String,
    /// Pool size per module with PostgreSQL.
    pub max_connections: u32,
    /// Pool size per module with SQLite, which has one writer at a time.
    pub sqlite_max_connections: u32,
    pub connect_timeout_seconds: u64,
}

/// `[redis]`.
#[derive(Debug, Clone, Deserialize)]
pub struct RedisSettings {
    /// Empty: keep rate limits and caches in this process's memory.
    pub url: Secret,
    /// Prefix of every key this deployment writes.
    pub key_prefix: String,
    pub pool_size: usize,
    /// Longest any one Redis call may take (pool wait, connect, command), in milliseconds;
    /// then it fails as unavailable and the feature takes its fallback.
    pub timeout_ms: u64,
}

impl RedisSettings {
    pub fn timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.timeout_ms)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

/// `[log]`.
#[derive(Debug, Clone, Deserialize)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A tracing `EnvFilter` directive, e.g. `info,sqlx=warn`. `RUST_LOG` overrides it.
    pub filter: String,
}

/// `[traces]` (docs/operations.md, "Traces").
#[derive(Debug, Clone, Deserialize)]
pub struct TraceSettings {
    /// Base URL of an OTLP/HTTP receiver (`http://jaeger:4318`); empty: traces off.
    pub otlp_endpoint: String,
    /// How long finished spans wait to be sent in one batch.
    pub export_delay_ms: u64,
    /// Which spans are exported (a tracing `EnvFilter` directive, apart from `log.filter`).
    pub filter: String,
}

/// `[jwt]`: what every process needs to verify access tokens.
#[derive(Debug, Clone, Deserialize)]
pub struct JwtSettings {
    pub issuer: String,
    pub audience: String,
    /// Clock skew tolerated on `exp`.
    pub leeway_seconds: u64,
    /// Shortest interval between two JWKS fetches triggered by an unknown `kid`.
    pub jwks_min_refresh_seconds: u64,
}

/// `[events]`: the event backbone.
#[derive(Debug, Clone, Deserialize)]
pub struct EventSettings {
    /// Empty: the in-process bus (one process). `amqp://…`: RabbitMQ.
    pub amqp_url: Secret,
    /// The topic exchange (RabbitMQ).
    pub exchange: String,
    /// Prefix of this deployment's queue names (`<prefix>movie_queue`, ...), so deployments
    /// or test runs can share a broker.
    pub queue_prefix: String,
    /// Deliveries of a failing event in all, the first included, before it is dead-lettered.
    pub max_attempts: u32,
    /// Wait before the second delivery; doubled for each further one.
    pub first_backoff_ms: u64,
    /// How often each outbox relay looks for unsent events (it is also woken after commits).
    pub relay_poll_ms: u64,
    /// Sent outbox rows and inbox records are deleted after this many hours (at least 24).
    pub retention_hours: u64,
}

impl EventSettings {
    /// How long outbox and inbox rows are kept.
    pub fn retention(&self) -> chrono::Duration {
        chrono::Duration::hours(i64::try_from(self.retention_hours).unwrap_or(i64::MAX / 3_600_000))
    }

    pub fn retry(&self) -> crate::events::RetryPolicy {
        crate::events::RetryPolicy {
            max_attempts: self.max_attempts.max(1),
            first_backoff: std::time::Duration::from_millis(self.first_backoff_ms),
        }
    }
}

/// Checks on values that parse but make no sense; each error names its key.
pub fn check_shared(server: &ServerSettings, database: &DatabaseSettings, redis: &RedisSettings) -> Vec<String> {
    let mut errors = Vec::new();
    if server.body_limit_bytes == 0 {
        errors.push("server.body_limit_bytes must be greater than 0".to_owned());
    }
    let db = database.url.expose();
    if !(db.is_empty() || db.starts_with("postgres://") || db.starts_with("postgresql://")) {
        errors.push("database.url must be empty (SQLite under data_dir) or a postgres:// URL".to_owned());
    }
    if !database.schema_prefix.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
        errors.push("database.schema_prefix may hold only a-z, 0-9 and _".to_owned());
    }
    if database.max_connections == 0 {
        errors.push("database.max_connections must be greater than 0".to_owned());
    }
    if database.sqlite_max_connections == 0 {
        errors.push("database.sqlite_max_connections must be greater than 0".to_owned());
    }
    let r = redis.url.expose();
    if !(r.is_empty() || r.starts_with("redis://") || r.starts_with("rediss://")) {
        errors.push("redis.url must be empty (in memory) or a redis:// URL".to_owned());
    }
    if redis.pool_size == 0 {
        errors.push("redis.pool_size must be greater than 0".to_owned());
    }
    if redis.timeout_ms == 0 {
        errors.push("redis.timeout_ms must be greater than 0".to_owned());
    }
    errors
}

/// Creates `dir` and any missing parents owner-only (0700), as every directory of the
/// data directory is: it holds keys, user data and outgoing mail. An existing directory keeps
/// the mode its operator gave it.
///
/// # Errors
/// A directory cannot be created.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;

    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// The contents of a private file under the data directory (a generated key): read if it
/// exists (its permissions narrowed to the owner if they were wider), else written once,
/// owner-only, from `generate`. Only for keys that configuration may leave empty in a single
/// process; replicas must be given the same key through configuration instead.
///
/// # Errors
/// The file cannot be read or created; the message names the path.
pub fn private_file(path: &Path, generate: impl FnOnce() -> Result<Vec<u8>, String>) -> Result<Vec<u8>, String> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};

    let named = |e: std::io::Error| format!("{}: {e}", path.display());
    if path.exists() {
        let mode = std::fs::metadata(path).map_err(named)?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "key file readable by others; restricting to owner");
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(named)?;
        }
        return std::fs::read(path).map_err(named);
    }
    let contents = generate()?;
    if let Some(dir) = path.parent() {
        private_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(named)?;
    file.write_all(&contents).map_err(named)?;
    tracing::info!(path = %path.display(), "generated a new key file");
    Ok(contents)
}
