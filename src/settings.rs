//! The whole configuration of a process: the platform's shared sections plus each
//! compiled-in module's own. Loaded once in `main` and passed down; nothing global.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use platform::config::{
    DatabaseSettings, EventSettings, JwtSettings, LogSettings, RedisSettings, ServerSettings, TraceSettings,
};
use serde::Deserialize;

pub use crate::modules::{Module, Sections};

/// The compiled-in defaults of the shared sections: the documented `config/default.toml`.
const DEFAULTS: &str = include_str!("../config/default.toml");

/// `[services]`: where modules this process does not serve are reached.
#[derive(Debug, Clone, Deserialize)]
pub struct ServiceUrls {
    /// `services.<module>`: each module's base URL (its default is in its crate's `config.toml`).
    #[serde(flatten)]
    urls: BTreeMap<String, String>,
    /// The shared secret modules present to each other's internal routes (notification asks
    /// auth for addresses with it). Required by a process that reaches auth over REST to read
    /// addresses; at least 32 characters.
    pub token: platform::config::Secret,
}

impl ServiceUrls {
    /// The base URL of `module` (empty when none is configured, which validation refuses).
    pub fn url(&self, module: Module) -> &str {
        self.urls.get(module.name()).map_or("", String::as_str)
    }

    pub fn set(&mut self, module: Module, url: impl Into<String>) {
        self.urls.insert(module.name().to_owned(), url.into());
    }
}

/// `[demo]`.
#[derive(Debug, Clone, Deserialize)]
pub struct DemoSettings {
    /// Create the demo catalog when this process serves movie and its catalog is empty.
    pub seed: bool,
    /// The site's card form lists the simulated card gateway's test cards.
    pub test_cards: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub data_dir: PathBuf,
    /// Unset: every compiled-in module.
    pub modules: Option<Vec<Module>>,
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub redis: RedisSettings,
    pub log: LogSettings,
    pub traces: TraceSettings,
    pub jwt: JwtSettings,
    pub events: EventSettings,
    pub services: ServiceUrls,
    pub demo: DemoSettings,
    /// Each compiled-in module's own `[section]`, read from the same layers (the key
    /// `sections` mirrors the whole configuration: [`platform::config::load`]).
    pub sections: Sections,
}

impl Settings {
    /// Defaults → `config/$BOXOFFICE_PROFILE.toml` → `file` → `BOXOFFICE__*` variables, validated.
    ///
    /// # Errors
    /// A layer that is missing or does not parse, or a value that makes no sense; the
    /// message names the key.
    pub fn load(file: Option<&Path>) -> Result<Self, String> {
        let profile = std::env::var("BOXOFFICE_PROFILE").ok().filter(|p| !p.is_empty());
        let dir = std::env::var("BOXOFFICE_CONFIG_DIR").map_or_else(|_| PathBuf::from("config"), PathBuf::from);
        Self::load_profile(profile.as_deref().map(|p| (p, dir.as_path())), file)
    }

    /// [`Settings::load`] with the profile (name, directory) given rather than read from the
    /// environment.
    ///
    /// # Errors
    /// As [`Settings::load`].
    pub fn load_profile(profile: Option<(&str, &Path)>, file: Option<&Path>) -> Result<Self, String> {
        let defaults: Vec<&str> = std::iter::once(DEFAULTS).chain(Module::ALL.map(Module::config)).collect();
        let settings: Settings = platform::config::load(&defaults, profile, file, &["modules"], "sections")?;
        settings.validate()?;
        Ok(settings)
    }

    /// # Errors
    /// Every inconsistent value, each naming its key.
    pub fn validate(&self) -> Result<(), String> {
        let mut errors = platform::config::check_shared(&self.server, &self.database, &self.redis);
        for m in self.modules.iter().flatten() {
            if !Module::COMPILED.contains(m) {
                errors.push(format!(
                    "modules: {} is not compiled into this binary (Cargo feature `{}`)",
                    m.name(),
                    m.name()
                ));
            }
        }
        for module in Module::ALL.into_iter().filter(|m| !self.serves(*m)) {
            let url = self.services.url(module);
            if url::Url::parse(url).is_err() {
                errors.push(format!("services.{}: {url:?} is not a URL", module.name()));
            }
        }
        let token = self.services.token.expose();
        if !token.is_empty() && token.len() < 32 {
            errors.push("services.token must be at least 32 characters".to_owned());
        }
        if token.is_empty() && self.serves(Module::Notification) && !self.serves(Module::Auth) {
            errors.push(
                "services.token must be set: notification reads addresses from auth over REST with it".to_owned(),
            );
        }
        if token.is_empty() && self.serves(Module::Payment) && !self.serves(Module::Booking) {
            errors.push(
                "services.token must be set: payment holds bookings for their charges over REST with it".to_owned(),
            );
        }
        if self.events.retention_hours < 24 {
            errors.push("events.retention_hours must be at least 24".to_owned());
        }
        if self.events.max_attempts == 0 {
            errors.push("events.max_attempts must be at least 1".to_owned());
        }
        let amqp = self.events.amqp_url.expose();
        if !(amqp.is_empty() || amqp.starts_with("amqp://") || amqp.starts_with("amqps://")) {
            errors.push("events.amqp_url must be empty (in-process bus) or an amqp:// URL".to_owned());
        }
        // The in-process bus reaches only this process's consumers: a publisher here whose
        // consumers run elsewhere would wait forever (its outbox keeps the events).
        let served = self.served();
        if amqp.is_empty() && served.iter().any(|m| m.publishes()) {
            let elsewhere: Vec<&str> = Module::ALL
                .into_iter()
                .filter(|m| m.queue().is_some() && !served.contains(m))
                .map(Module::name)
                .collect();
            if !elsewhere.is_empty() {
                errors.push(format!(
                    "events.amqp_url must be set: with the in-process bus, {} must be served in this process too",
                    elsewhere.join(", ")
                ));
            }
        }
        errors.extend(Module::COMPILED.iter().filter_map(|m| m.local(self)).flat_map(|m| m.check()));
        if errors.is_empty() { Ok(()) } else { Err(format!("invalid configuration: {}", errors.join("; "))) }
    }

    /// The modules this process serves.
    pub fn served(&self) -> Vec<Module> {
        self.modules.clone().unwrap_or_else(|| Module::COMPILED.to_vec())
    }

    /// This process's name in traces: `boxoffice` when it serves every compiled-in module,
    /// else `boxoffice-` and the modules it serves (`boxoffice-booking`).
    pub fn service_name(&self) -> String {
        match &self.modules {
            None => "boxoffice".to_owned(),
            Some(modules) => {
                format!("boxoffice-{}", modules.iter().map(|m| m.name()).collect::<Vec<_>>().join("-"))
            }
        }
    }

    pub fn serves(&self, module: Module) -> bool {
        self.served().contains(&module)
    }
}
