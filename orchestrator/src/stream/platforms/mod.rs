//! [`ThreadSink`](super::ThreadSink) implementations on top of the adapters' clients. Each looks up the
//! install's bot token and API base URL (`settings.api_base_url`, else the platform's default) per call through
//! the cached [`Installs`], so a rotated token or a re-pointed install takes effect within the cache TTL.

mod discord;
mod slack;
mod telegram;

use std::sync::Arc;

use cynode_adapters::{PlatformError, PlatformResult};
use reqwest::Url;
use secrecy::SecretString;

pub use discord::DiscordSink;
pub use slack::SlackSink;
pub use telegram::TelegramSink;

use super::Rate;
use super::sink::{BucketSpec, Target};
use crate::installs::{Installs, Lookup};

/// What every platform sink needs: HTTP, install lookups.
#[derive(Clone, Debug)]
pub(crate) struct Common {
    pub(crate) http: reqwest::Client,
    pub(crate) installs: Arc<Installs>,
}

/// An install's API base URL and bot token.
pub(crate) struct Creds {
    pub(crate) base_url: Url,
    pub(crate) token: SecretString,
}

impl Common {
    pub(crate) async fn creds(&self, target: &Target, default_base: &str) -> PlatformResult<Creds> {
        let platform = target.platform();
        let install = match self.installs.find(platform, &target.thread.install).await {
            Ok(Lookup::Found(install)) => install,
            Ok(_) => return Err(PlatformError::Auth),
            Err(_) => return Err(PlatformError::Transient("install lookup failed".into())),
        };
        let token = install.secret("bot_token").cloned().ok_or(PlatformError::Auth)?;
        let base = install.settings.api_base_url.as_deref().unwrap_or(default_base);
        let base_url = Url::parse(base).map_err(|_| PlatformError::InvalidRequest("bad api_base_url".into()))?;
        Ok(Creds { base_url, token })
    }
}

pub(crate) fn bucket(key: String, rate: Rate) -> BucketSpec {
    BucketSpec { key, per_second: rate.per_second, burst: rate.burst }
}
