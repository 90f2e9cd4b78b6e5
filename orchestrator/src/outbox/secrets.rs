//! Subscription signing secrets at rest, in the format the bootstrap import writes: a JSON array of
//! `whsec_…` strings, newest first, sealed with [`SecretBox`] under the context `subscription:{name}`.

use chrono::{DateTime, Utc};
use cynode_adapters::webhook::standard::StandardSecret;
use secrecy::{ExposeSecret, SecretString};

use crate::crypto::{CryptoError, SecretBox};

/// Most secrets kept at once (the newest plus those still in their grace period).
pub(super) const MAX_SECRETS: usize = 4;

/// The sealing context of a subscription's secrets.
pub(super) fn context(name: &str) -> String {
    format!("subscription:{name}")
}

/// A fresh secret: 32 random bytes as `whsec_<base64>`.
pub(super) fn generate() -> SecretString {
    let bytes = rand::random::<[u8; 32]>().to_vec();
    // 32 bytes is inside the 24–64 range, so this cannot fail; fall back to an unusable value rather than panic.
    SecretString::from(StandardSecret::from_bytes(bytes).map(|s| s.expose_whsec()).unwrap_or_default())
}

/// Whether `s` is a usable Standard Webhooks secret.
pub(super) fn is_valid(s: &SecretString) -> bool {
    StandardSecret::parse(s.expose_secret()).is_ok() && s.expose_secret().trim().starts_with("whsec_")
}

/// Seals a list of `whsec_…` strings.
pub(super) fn seal(sb: &SecretBox, name: &str, list: &[SecretString]) -> Vec<u8> {
    let plain: Vec<&str> = list.iter().map(|s| s.expose_secret()).collect();
    sb.seal(&context(name), &serde_json::to_vec(&plain).unwrap_or_default())
}

/// Opens the sealed list.
pub(super) fn open(sb: &SecretBox, name: &str, sealed: &[u8]) -> Result<Vec<SecretString>, CryptoError> {
    let plain = sb.open(&context(name), sealed)?;
    let list: Vec<String> = serde_json::from_slice(&plain).map_err(|_| CryptoError::Open)?;
    Ok(list.into_iter().map(SecretString::from).collect())
}

/// The secrets to sign with now: all of them, or only the newest once the others are retired.
pub(super) fn current(
    list: Vec<SecretString>,
    retire_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Vec<SecretString> {
    match retire_at {
        Some(t) if t <= now => list.into_iter().take(1).collect(),
        _ => list,
    }
}

/// The signing keys for a delivery, parsed. Unparseable entries are skipped (the import validates them).
pub(super) fn signing_keys(
    sb: &SecretBox,
    name: &str,
    sealed: &[u8],
    retire_at: Option<DateTime<Utc>>,
) -> Result<Vec<StandardSecret>, CryptoError> {
    let list = current(open(sb, name, sealed)?, retire_at, Utc::now());
    Ok(list.iter().filter_map(|s| StandardSecret::parse(s.expose_secret()).ok()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_are_32_bytes_and_valid() {
        let a = generate();
        assert!(is_valid(&a));
        assert_eq!(a.expose_secret().len(), "whsec_".len() + 44);
        assert_ne!(a.expose_secret(), generate().expose_secret());
        assert!(!is_valid(&SecretString::from("whsec_c2hvcnQ=")));
        assert!(!is_valid(&SecretString::from("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")), "prefix required");
    }

    #[test]
    fn sealed_in_the_bootstrap_format() {
        let sb = SecretBox::from_base64(&SecretBox::generate_key()).expect("key");
        let list = [generate(), generate()];
        let sealed = seal(&sb, "s1", &list);
        let plain = sb.open("subscription:s1", &sealed).expect("open");
        let strings: Vec<String> = serde_json::from_slice(&plain).expect("a JSON array of strings");
        assert_eq!(strings[1], list[1].expose_secret());
        assert!(open(&sb, "s2", &sealed).is_err(), "bound to the subscription name");
        let now = Utc::now();
        let opened = open(&sb, "s1", &sealed).expect("open");
        assert_eq!(current(opened.clone(), None, now).len(), 2);
        assert_eq!(current(opened.clone(), Some(now + chrono::Duration::hours(1)), now).len(), 2);
        assert_eq!(current(opened, Some(now), now).len(), 1);
    }
}
