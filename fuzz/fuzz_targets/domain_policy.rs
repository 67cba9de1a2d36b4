//! The termination policy (`domain::policy`) over arbitrary facts: the Request-URI host, the
//! connector's termination settings (validated or not), the source address, transport,
//! From user and destination; with the helpers it rests on (CIDR allowlists, E.164 and
//! the numbering plan, stored credentials, join tokens, the MOS estimate). Checked beyond
//! "no panic": the order the policy promises (an outsider learns nothing past
//! `SourceNotAllowed`) and what an admitted call satisfies.
#![no_main]

use std::net::IpAddr;

use arbitrary::Arbitrary;
use domain::policy::{CallFacts, Destination, Refusal, check_termination, connector_id_from_host};
use domain::voice_connector::{StoredCredential, Termination, VoiceConnector, country_of, is_e164};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    host: String,
    sip_domain: String,
    require_encryption: bool,
    termination: Option<Term>,
    validate: bool,
    source: IpAddr,
    over_tls: bool,
    from_user: String,
    destination: Dest,
    password: String,
    token_nonce: [u8; 16],
    figures: (f64, f64, f64, f64),
}

#[derive(Arbitrary, Debug)]
struct Term {
    cps_limit: Option<u32>,
    default_phone_number: Option<String>,
    calling_regions: Vec<String>,
    cidr_allowed_list: Vec<String>,
    disabled: Option<bool>,
}

#[derive(Arbitrary, Debug)]
enum Dest {
    MeetingJoin(String),
    Pstn(String),
}

fuzz_target!(|input: Input| {
    let id = connector_id_from_host(&input.host, &input.sip_domain)
        .unwrap_or_else(|| "abcdef1ghij2klmno3pqr4".into());
    assert!(domain::ids::is_voice_connector_id(&id));
    let vc = VoiceConnector {
        voice_connector_id: id.clone(),
        aws_region: None,
        name: "pbx".into(),
        outbound_host_name: domain::voice_connector::outbound_host_name(&id, &input.sip_domain),
        require_encryption: input.require_encryption,
        created_timestamp: String::new(),
        updated_timestamp: String::new(),
        voice_connector_arn: domain::voice_connector::voice_connector_arn("us-east-1", &id),
        integration_type: None,
        network_type: None,
    };
    let term = input.termination.map(|t| Termination {
        cps_limit: t.cps_limit,
        default_phone_number: t.default_phone_number,
        calling_regions: t.calling_regions,
        cidr_allowed_list: t.cidr_allowed_list,
        disabled: t.disabled,
    });
    let term = match term {
        Some(mut t) if input.validate => match t.validate() {
            Ok(()) => {
                assert!(t.cidr_allowed_list.iter().all(|c| c.parse::<ipnet::IpNet>().is_ok()));
                Some(t)
            }
            Err(e) => {
                let _ = e.to_string();
                None
            }
        },
        t => t,
    };
    let destination = match &input.destination {
        Dest::MeetingJoin(token) => Destination::MeetingJoin {
            token: token.clone(),
        },
        Dest::Pstn(number) => Destination::Pstn {
            number: number.clone(),
        },
    };
    let facts = CallFacts {
        source: input.source,
        over_tls: input.over_tls,
        from_user: &input.from_user,
        destination: &destination,
    };
    let verdict = check_termination(&vc, term.as_ref(), &facts);
    match &verdict {
        Ok(()) => {
            assert!(is_e164(&input.from_user));
            assert!(!vc.require_encryption || input.over_tls);
            if let Destination::Pstn { number } = &destination {
                assert!(is_e164(number));
            }
        }
        Err(r) => {
            let _ = (r.status(), r.to_string());
        }
    }
    if let Some(t) = &term
        && t.is_enabled()
        && !t.allows_source(input.source)
    {
        assert!(
            matches!(verdict, Err(Refusal::SourceNotAllowed { .. })),
            "{verdict:?} before the source check"
        );
    }

    let _ = country_of(&input.from_user);
    if let Dest::Pstn(n) = &input.destination {
        let _ = country_of(n);
    }
    if let Ok(c) = StoredCredential::derive(&input.from_user, &input.password, &vc.outbound_host_name) {
        assert_eq!(c.ha1_md5.len(), 32);
        assert_eq!(c.ha1_sha256.len(), 64);
    }
    let key = domain::token::TokenKey::from_bytes([9; 32]);
    let token = key.token_for(&input.from_user, &input.token_nonce);
    assert!(domain::token::well_formed(&token), "{token}");
    if let Dest::MeetingJoin(t) = &input.destination {
        let _ = (domain::token::well_formed(t), domain::token::token_hash(t));
    }
    let (rtt, jitter, loss, bpl) = input.figures;
    if [rtt, jitter, loss, bpl].iter().all(|f| f.is_finite()) {
        let mos = domain::quality::mos_estimate(rtt, jitter, loss, bpl);
        assert!((1.0..=4.5).contains(&mos), "MOS {mos} from {:?}", input.figures);
    }
});
