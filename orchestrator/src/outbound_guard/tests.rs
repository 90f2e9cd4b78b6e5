use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

#[test]
fn internal_ranges_are_refused_by_default() {
    let guard = OutboundGuard::default();
    for (addr, kind) in [
        ("127.0.0.1", "loopback"),
        ("127.9.9.9", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("64:ff9b::7f00:1", "loopback"),
        ("::127.0.0.1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("::ffff:192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("fd00:ec2::254", "unique-local"),
        ("100.64.0.1", "shared (CGNAT)"),
        ("100.127.255.254", "shared (CGNAT)"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("0.1.2.3", "unspecified"),
        ("::", "unspecified"),
        ("255.255.255.255", "reserved"),
        ("240.0.0.1", "reserved"),
    ] {
        assert_eq!(guard.check_ip(ip(addr)), Err(Refused::Internal { kind }), "{addr}");
    }
    for public in ["93.184.215.14", "100.128.0.1", "172.32.0.1", "2606:4700::1111", "::ffff:8.8.8.8", "1.1.1.1"] {
        assert_eq!(guard.check_ip(ip(public)), Ok(()), "{public}");
    }
}

#[test]
fn allowed_ranges_open_exactly_those_addresses() {
    let allow = ["127.0.0.0/8", "10.1.0.0/16", "fd00:1::/32"].map(|c| c.parse::<Cidr>().expect("cidr")).to_vec();
    let guard = OutboundGuard::allowing(allow);
    for ok in ["127.0.0.1", "::ffff:127.0.0.1", "10.1.255.1", "fd00:1:2::3"] {
        assert_eq!(guard.check_ip(ip(ok)), Ok(()), "{ok}");
    }
    for refused in ["10.2.0.1", "::1", "169.254.169.254", "fd00:2::1"] {
        assert!(guard.check_ip(ip(refused)).is_err(), "{refused}");
    }
}

#[test]
fn cidrs_parse_strictly() {
    assert_eq!("10.0.0.0/8".parse::<Cidr>().expect("v4").to_string(), "10.0.0.0/8");
    assert_eq!("::1".parse::<Cidr>().expect("single").to_string(), "::1/128");
    assert_eq!("::ffff:10.0.0.0/104".parse::<Cidr>().expect("mapped").to_string(), "10.0.0.0/8");
    assert!("0.0.0.0/0".parse::<Cidr>().expect("all").contains(ip("8.8.8.8")));
    for bad in ["10.0.0.0/33", "10.0.0/8", "fd00::/129", "", "localhost/8", "10.0.0.0/x"] {
        let e = bad.parse::<Cidr>().expect_err(bad);
        assert!(e.to_string().contains("ADDRESS/PREFIX"), "{e}");
    }
}

#[test]
fn urls_with_internal_literals_or_localhost_are_refused_before_resolving() {
    let guard = OutboundGuard::default();
    let check = |u: &str| guard.check_url(&Url::parse(u).expect("url"));
    assert_eq!(check("http://127.0.0.1:18777/internal"), Err(Refused::Internal { kind: "loopback" }));
    assert_eq!(check("http://[::ffff:127.0.0.1]/"), Err(Refused::Internal { kind: "loopback" }));
    assert_eq!(check("http://169.254.169.254/latest/meta-data/"), Err(Refused::Internal { kind: "link-local" }));
    assert_eq!(check("http://LOCALHOST./x"), Err(Refused::Localhost));
    assert_eq!(check("http://api.localhost/x"), Err(Refused::Localhost));
    // Decimal and hex forms of 127.0.0.1 are normalised by the URL parser.
    assert_eq!(check("http://2130706433/"), Err(Refused::Internal { kind: "loopback" }));
    assert_eq!(check("http://0x7f.1/"), Err(Refused::Internal { kind: "loopback" }));
    assert_eq!(check("https://hooks.example.org/x"), Ok(()));
    let open = OutboundGuard::allowing(vec!["127.0.0.0/8".parse().expect("cidr")]);
    assert_eq!(open.check_url(&Url::parse("http://localhost:1/").expect("url")), Ok(()));
}

/// The resolver the guarded client uses: `localhost` resolves (through the system resolver) to loopback
/// addresses only, all of which are dropped, so the name cannot be connected to; allowed, it resolves.
#[tokio::test]
async fn the_resolver_drops_refused_addresses_of_a_name() {
    let strict = GuardedResolver { guard: OutboundGuard::default() };
    let name: Name = "localhost".parse().expect("name");
    let err = strict.resolve(name).await.err().expect("refused");
    assert!(matches!(err.downcast_ref::<Refused>(), Some(Refused::Internal { kind: "loopback" })), "{err}");

    let open = GuardedResolver { guard: OutboundGuard::allowing(vec!["127.0.0.0/8".parse().expect("cidr")]) };
    let addrs: Vec<SocketAddr> = open.resolve("localhost".parse().expect("name")).await.expect("resolves").collect();
    assert!(addrs.iter().any(|a| a.ip() == ip("127.0.0.1")), "{addrs:?}");
    assert!(addrs.iter().all(|a| a.ip().is_ipv4()), "::1 is not in the allowed range: {addrs:?}");
}
