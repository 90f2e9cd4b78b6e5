//! The `outbound` section: which internal address ranges requests to tenant-set URLs may reach.

use cynode_orchestrator::outbound_guard::{Cidr, OutboundGuard};
use serde::{Deserialize, Deserializer};

/// Outbound requests to URLs a tenant sets (webhook receivers; later model providers and embedders).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundConfig {
    /// Internal ranges (loopback, private, link-local, unique-local, CGNAT, …) that receivers may be in anyway,
    /// in CIDR notation: a YAML list, or one comma-separated string (`CYNODE__OUTBOUND__ALLOW_CIDRS=
    /// 127.0.0.0/8,10.1.0.0/16`). Empty by default: no internal address is reached.
    #[serde(default, deserialize_with = "cidrs")]
    pub allow_cidrs: Vec<Cidr>,
}

impl OutboundConfig {
    /// The guard these settings describe.
    pub fn guard(&self) -> OutboundGuard {
        OutboundGuard::allowing(self.allow_cidrs.clone())
    }
}

/// A list of CIDRs, or a comma-separated string of them.
fn cidrs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Cidr>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        One(String),
        Many(Vec<String>),
    }
    let items = match Raw::deserialize(d)? {
        Raw::One(s) => s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect(),
        Raw::Many(v) => v,
    };
    items.iter().map(|s| s.parse::<Cidr>().map_err(serde::de::Error::custom)).collect()
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, Overrides};

    fn load(pairs: &[(&str, &str)]) -> Result<Config, crate::config::ConfigError> {
        let vars: Vec<(String, String)> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Config::load(None, vars, &Overrides::default())
    }

    #[test]
    fn no_internal_range_is_allowed_unless_configured() {
        let strict = load(&[]).expect("defaults").core_settings().outbound;
        assert!(strict.check_ip("127.0.0.1".parse().expect("ip")).is_err());
        let vars = [("CYNODE__OUTBOUND__ALLOW_CIDRS", "127.0.0.0/8, 10.1.0.0/16")];
        let open = load(&vars).expect("config").core_settings().outbound;
        assert_eq!(open.allowed().len(), 2);
        assert!(open.check_ip("10.1.2.3".parse().expect("ip")).is_ok());
        assert!(open.check_ip("10.2.0.1".parse().expect("ip")).is_err());
    }

    #[test]
    fn a_bad_range_names_the_key_and_the_fix() {
        let err = load(&[("CYNODE__OUTBOUND__ALLOW_CIDRS", "10.0.0.0/33")]).expect_err("refused").to_string();
        assert!(err.contains("outbound.allow_cidrs") && err.contains("ADDRESS/PREFIX"), "{err}");
    }
}
