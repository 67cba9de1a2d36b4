use super::*;
use rand::{Rng, SeedableRng};

fn carrier(name: &str, prefixes: &[&str], priority: u32, weight: u32) -> Carrier {
    let mut c = Carrier::new(name);
    c.addresses = vec![HostPort::parse("127.0.0.10:5060", 5060).expect("addr")];
    c.prefixes = prefixes.iter().map(|p| p.to_string()).collect();
    c.priority = priority;
    c.weight = weight;
    c.validate().expect("valid");
    c
}

fn names(v: &[&Carrier]) -> Vec<String> {
    v.iter().map(|c| c.name.clone()).collect()
}

#[test]
fn longest_prefix_wins_then_priority() {
    let cs = vec![
        carrier("any", &[], 1, 1),
        carrier("nanp", &["+1"], 5, 1),
        carrier("nanp-backup", &["1"], 9, 1),
        carrier("london", &["+4420"], 1, 1),
        carrier("uk", &["+44"], 1, 1),
    ];
    let mut zero = |_| 0;
    assert_eq!(
        names(&carriers_for("+12065550100", &cs, &mut zero)),
        ["nanp", "nanp-backup"]
    );
    assert_eq!(
        names(&carriers_for("+442079460000", &cs, &mut zero)),
        ["london"]
    );
    assert_eq!(
        names(&carriers_for("+441614960000", &cs, &mut zero)),
        ["uk"]
    );
    assert_eq!(
        names(&carriers_for("+33142000000", &cs, &mut zero)),
        ["any"]
    );
    let only_uk = vec![carrier("uk", &["+44"], 1, 1)];
    assert!(carriers_for("+12065550100", &only_uk, &mut zero).is_empty());
}

#[test]
fn emergency_calls_only_reach_carriers_marked_for_them() {
    let mut marked = carrier("e911", &[], 9, 1);
    marked.emergency = true;
    let cs = vec![carrier("nanp", &["+1"], 1, 1), marked];
    let mut zero = |_| 0;
    // The marked carrier, though an ordinary call prefers the longer prefix.
    assert_eq!(
        names(&emergency_carriers_for("+12025550911", &cs, &mut zero)),
        ["e911"]
    );
    assert_eq!(
        names(&carriers_for("+12025550911", &cs, &mut zero)),
        ["nanp"]
    );
    assert!(emergency_carriers_for("+12025550911", &cs[..1], &mut zero).is_empty());
    let mut off = cs[1].clone();
    off.enabled = false;
    assert!(emergency_carriers_for("+12025550911", &[off], &mut zero).is_empty());
}

#[test]
fn disabled_carriers_are_skipped() {
    let mut off = carrier("off", &["+1"], 1, 1);
    off.enabled = false;
    let cs = vec![off, carrier("any", &[], 1, 1)];
    let mut zero = |_| 0;
    // The disabled +1 carrier does not shadow the catch-all one.
    assert_eq!(
        names(&carriers_for("+12065550100", &cs, &mut zero)),
        ["any"]
    );
}

#[test]
fn equal_priority_splits_by_weight() {
    let cs = vec![carrier("a", &["+1"], 1, 1), carrier("b", &["+1"], 1, 3)];
    let mut rng = rand::rngs::StdRng::seed_from_u64(12);
    let mut pick = |n: u32| rng.random_range(0..n);
    let mut b_first = 0u32;
    for _ in 0..4000 {
        let order = carriers_for("+12065550100", &cs, &mut pick);
        assert_eq!(order.len(), 2);
        b_first += u32::from(order[0].name == "b");
    }
    let share = f64::from(b_first) / 4000.0;
    assert!(
        (0.72..=0.78).contains(&share),
        "b first in {share} of calls"
    );
}

#[test]
fn source_matches_narrowest_block() {
    let mut wide = carrier("wide", &[], 1, 1);
    wide.sources = vec!["127.0.0.0/8".into()];
    wide.validate().expect("valid");
    let mut narrow = carrier("narrow", &[], 1, 1);
    narrow.sources = vec!["127.0.0.20".into()];
    narrow.validate().expect("valid");
    assert_eq!(narrow.sources, ["127.0.0.20/32"]);
    let cs = vec![wide, narrow];
    let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
    assert_eq!(
        carrier_for_source(ip("127.0.0.20"), &cs).map(|c| c.name.as_str()),
        Some("narrow")
    );
    assert_eq!(
        carrier_for_source(ip("::ffff:127.0.0.21"), &cs).map(|c| c.name.as_str()),
        Some("wide")
    );
    assert!(carrier_for_source(ip("192.0.2.1"), &cs).is_none());
}

#[test]
fn validation_names_the_field() {
    let field = |c: &mut Carrier| match c.validate() {
        Err(DomainError::Invalid { field, .. }) => field,
        other => panic!("expected a field error, got {other:?}"),
    };
    let base = carrier("ok", &[], 1, 1);
    let mut c = base.clone();
    c.name = "bad name".into();
    assert_eq!(field(&mut c), "name");
    let mut c = base.clone();
    c.addresses.clear();
    assert_eq!(field(&mut c), "address");
    let mut c = base.clone();
    c.prefixes = vec!["+1x".into()];
    assert_eq!(field(&mut c), "prefix");
    let mut c = base.clone();
    c.sources = vec!["10.0.0.1/24".into()];
    assert_eq!(field(&mut c), "source");
    let mut c = base.clone();
    c.weight = 0;
    assert_eq!(field(&mut c), "weight");
    let mut c = base.clone();
    c.codecs = vec!["GSM".into()];
    assert_eq!(field(&mut c), "codecs");
    let mut c = base.clone();
    c.register = true;
    assert_eq!(field(&mut c), "register");
    let mut c = base.clone();
    c.username = Some("u".into());
    assert_eq!(field(&mut c), "password");
    let mut c = base.clone();
    c.cps = Some(0);
    assert_eq!(field(&mut c), "cps");

    let mut c = base;
    c.codecs = vec!["pcmu".into(), "OPUS".into(), "PCMU".into()];
    c.prefixes = vec!["44".into(), "+1".into()];
    c.validate().expect("valid");
    assert_eq!(c.codecs, ["PCMU", "opus"]);
    assert_eq!(c.prefixes, ["+1", "+44"]);
}

#[test]
fn host_port_forms() {
    let hp = |s: &str| HostPort::parse(s, 5061);
    assert_eq!(hp("sip.example.com:5080").expect("ok").port, 5080);
    assert_eq!(hp("sip.example.com").expect("ok").port, 5061);
    assert_eq!(hp("[::1]:5062").expect("ok").to_string(), "[::1]:5062");
    assert_eq!(hp("::1").expect("ok").host, "::1");
    for bad in ["", ":5060", "host:0", "host:99999", "ho st:5060", "[::1"] {
        assert!(hp(bad).is_err(), "{bad}");
    }
}

#[test]
fn password_never_in_debug() {
    let mut c = carrier("secretive", &[], 1, 1);
    c.username = Some("trunk".into());
    c.password = Some(Secret::new("hunter2-very-secret"));
    c.validate().expect("valid");
    let dbg = format!("{c:?}");
    assert!(!dbg.contains("hunter2"), "{dbg}");
    assert!(dbg.contains("<redacted>"));
    // The store keeps it (the edge needs it for digest answers).
    let json = serde_json::to_string(&c).expect("json");
    let back: Carrier = serde_json::from_str(&json).expect("parse");
    assert_eq!(
        back.password.as_ref().map(Secret::expose),
        Some("hunter2-very-secret")
    );
}
