//! The guard on outbound requests to URLs a tenant can set (webhook subscriptions today; model providers and
//! embedders reuse it): no request may reach an internal network — loopback, private, link-local, unique-local,
//! CGNAT, multicast, unspecified or reserved addresses — unless the operator allowed that range
//! (`outbound.allow_cidrs`).
//!
//! The check is made on the address a connection is actually opened to, not on the name in the URL:
//! [`OutboundGuard::client_builder`] gives a `reqwest` client whose DNS resolver drops every blocked address a
//! name resolves to (and fails when none is left), so a name that resolves to a public address when the URL is
//! checked and to `127.0.0.1` when the request is sent (DNS rebinding) is refused all the same. `reqwest` does
//! not resolve IP literals, so [`OutboundGuard::check_url`] must be called before each request as well. The
//! client follows no redirects and uses no proxy (a proxy would make the connection on our behalf, out of the
//! guard's sight). IPv4 addresses written as IPv6 (`::ffff:127.0.0.1`, NAT64 `64:ff9b::7f00:1`, the deprecated
//! `::127.0.0.1`) are judged as the IPv4 address they carry.
//!
//! ```
//! use cynode_orchestrator::outbound_guard::{Cidr, OutboundGuard};
//! let strict = OutboundGuard::default();
//! assert!(strict.check_ip("10.0.0.1".parse().unwrap()).is_err());
//! assert!(strict.check_ip("93.184.215.14".parse().unwrap()).is_ok());
//! let lab = OutboundGuard::allowing(vec!["10.1.0.0/16".parse::<Cidr>().unwrap()]);
//! assert!(lab.check_ip("10.1.2.3".parse().unwrap()).is_ok());
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

/// An address range in CIDR notation (`10.0.0.0/8`, `fd00::/8`, or a single address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// Why a CIDR could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an address range: write it as ADDRESS/PREFIX, e.g. 10.0.0.0/8 or fd00::/8")]
pub struct CidrError(String);

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let fail = || CidrError(s.to_owned());
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let network: IpAddr = addr.parse().map_err(|_| fail())?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(fail)?,
            None => max,
        };
        // An IPv4 range written as IPv6 (`::ffff:10.0.0.0/104`) is that IPv4 range.
        Ok(match network {
            IpAddr::V6(v6) if prefix >= 96 => match embedded_v4(v6) {
                Some(v4) => Self { network: IpAddr::V4(v4), prefix: prefix - 96 },
                None => Self { network, prefix },
            },
            _ => Self { network, prefix },
        })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl Cidr {
    /// Whether `ip` lies in this range (IPv4 written as IPv6 counts as IPv4).
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_eq(&net.octets(), &ip.octets(), self.prefix),
            (IpAddr::V6(net), IpAddr::V6(ip)) => prefix_eq(&net.octets(), &ip.octets(), self.prefix),
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], prefix: u8) -> bool {
    let bits = usize::from(prefix);
    let (whole, rest) = (bits / 8, bits % 8);
    if a[..whole] != b[..whole] {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    (a[whole] & mask) == (b[whole] & mask)
}

/// The IPv4 address an IPv6 address carries: `::ffff:a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`, and the deprecated
/// IPv4-compatible `::a.b.c.d` (but not `::` and `::1`).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(tail);
    }
    (s[..6] == [0; 6] && u32::from(tail) > 1).then_some(tail)
}

/// `ip` with an IPv4 address written as IPv6 turned into that IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => embedded_v4(v6).map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// What kind of internal address `ip` is, or `None` for a public one.
#[must_use]
pub fn internal_kind(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            Some(match o {
                _ if v4.is_unspecified() || o[0] == 0 => "unspecified",
                _ if v4.is_loopback() => "loopback",
                _ if v4.is_private() => "private",
                _ if v4.is_link_local() => "link-local",
                [100, b, ..] if (64..128).contains(&b) => "shared (CGNAT)",
                _ if v4.is_multicast() => "multicast",
                _ if v4.is_broadcast() || o[0] >= 240 => "reserved",
                [192, 0, 0, _] => "reserved",
                [198, b, ..] if b == 18 || b == 19 => "reserved",
                _ => return None,
            })
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            Some(match s[0] {
                _ if v6.is_unspecified() => "unspecified",
                _ if v6.is_loopback() => "loopback",
                x if x & 0xfe00 == 0xfc00 => "unique-local",
                x if x & 0xffc0 == 0xfe80 || x & 0xffc0 == 0xfec0 => "link-local",
                x if x & 0xff00 == 0xff00 => "multicast",
                0x100 if s[1..4] == [0, 0, 0] => "reserved",
                _ => return None,
            })
        }
    }
}

/// A connection the guard refused: the address and why (no more is said, so a refusal reveals little about
/// the network behind the gateway).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The URL's host is, or resolved only to, an internal address.
    #[error(
        "the receiver's address is a {kind} address, which CyNode does not send to (an operator can allow the \
         range with `outbound.allow_cidrs`)"
    )]
    Internal {
        /// The kind of address (`loopback`, `private`, …).
        kind: &'static str,
    },
    /// The host is `localhost` (or a name under `.localhost`), which always means this machine.
    #[error(
        "the receiver is `localhost`, this machine, which CyNode does not send to (an operator can allow \
         127.0.0.0/8 with `outbound.allow_cidrs`)"
    )]
    Localhost,
}

/// The policy on outbound addresses: internal ranges are refused unless allowed. Cheap to clone. The default
/// allows no internal range.
#[derive(Debug, Clone, Default)]
pub struct OutboundGuard {
    allow: Arc<[Cidr]>,
}

impl OutboundGuard {
    /// A guard that also lets connections reach `allow` (for tests, private receivers, a provider on the LAN).
    #[must_use]
    pub fn allowing(allow: Vec<Cidr>) -> Self {
        Self { allow: allow.into() }
    }

    /// The allowed ranges.
    #[must_use]
    pub fn allowed(&self) -> &[Cidr] {
        &self.allow
    }

    /// Checks one address.
    ///
    /// # Errors
    /// [`Refused::Internal`] for an internal address outside the allowed ranges.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Refused> {
        match internal_kind(ip) {
            Some(kind) if !self.allow.iter().any(|c| c.contains(ip)) => Err(Refused::Internal { kind }),
            _ => Ok(()),
        }
    }

    /// Checks what can be judged without resolving: an IP-literal host, and `localhost` (which would resolve to
    /// loopback). Call it before every request; names are checked when they are resolved.
    ///
    /// # Errors
    /// [`Refused`] for an internal literal or `localhost`.
    pub fn check_url(&self, url: &Url) -> Result<(), Refused> {
        match url.host() {
            Some(Host::Ipv4(v4)) => self.check_ip(IpAddr::V4(v4)),
            Some(Host::Ipv6(v6)) => self.check_ip(IpAddr::V6(v6)),
            Some(Host::Domain(name)) if is_localhost(name) => {
                self.check_ip(IpAddr::V4(Ipv4Addr::LOCALHOST)).map_err(|_| Refused::Localhost)
            }
            _ => Ok(()),
        }
    }

    /// [`Self::check_url`], then resolves a named host and refuses it when every address it has is refused. A
    /// name that does not resolve (yet) passes: the connection is checked again when it is made. For checks
    /// when a URL is entered, so the user hears at once.
    ///
    /// # Errors
    /// [`Refused`] as for [`Self::check_url`], or when the name resolves only to refused addresses.
    pub async fn check_url_resolved(&self, url: &Url) -> Result<(), Refused> {
        self.check_url(url)?;
        let Some(Host::Domain(name)) = url.host() else { return Ok(()) };
        let port = url.port_or_known_default().unwrap_or(0);
        let Ok(addrs) = tokio::net::lookup_host((name, port)).await else { return Ok(()) };
        let addrs: Vec<SocketAddr> = addrs.collect();
        match addrs.iter().find_map(|a| self.check_ip(a.ip()).err()) {
            Some(refused) if addrs.iter().all(|a| self.check_ip(a.ip()).is_err()) => Err(refused),
            _ => Ok(()),
        }
    }

    /// A `reqwest` client builder with the guard installed: its resolver keeps only allowed addresses, it
    /// follows no redirects and uses no proxy. Add timeouts and the like, then build.
    pub fn client_builder(&self) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver { guard: self.clone() }))
    }
}

/// `localhost` and names under `.localhost` (RFC 6761: always loopback).
fn is_localhost(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

/// The system resolver, keeping only addresses the guard allows.
#[derive(Debug)]
struct GuardedResolver {
    guard: OutboundGuard,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = self.guard.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = None;
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| match guard.check_ip(a.ip()) {
                    Ok(()) => true,
                    Err(e) => {
                        refused.get_or_insert(e);
                        false
                    }
                })
                .collect();
            match (allowed.is_empty(), refused) {
                (true, Some(e)) => Err(Box::new(e) as Box<dyn std::error::Error + Send + Sync>),
                _ => Ok(Box::new(allowed.into_iter()) as Addrs),
            }
        })
    }
}

#[cfg(test)]
mod tests;
