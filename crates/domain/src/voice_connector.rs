//! Voice connectors and their settings, in the shapes of the `chime-sdk-voice` service model.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::DomainError;

/// A voice connector (service model shape `VoiceConnector`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VoiceConnector {
    pub voice_connector_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aws_region: Option<String>,
    pub name: String,
    pub outbound_host_name: String,
    pub require_encryption: bool,
    pub created_timestamp: String,
    pub updated_timestamp: String,
    pub voice_connector_arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub integration_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_type: Option<String>,
}

/// The outbound host name callers dial: `<id>.<sip-domain>`.
pub fn outbound_host_name(id: &str, sip_domain: &str) -> String {
    format!("{id}.{sip_domain}")
}

/// `arn:aws:chime:<region>:<account>:vc/<id>`; self-hosted, so the account is all zeros.
pub fn voice_connector_arn(region: &str, id: &str) -> String {
    format!("arn:aws:chime:{region}:000000000000:vc/{id}")
}

/// Termination settings (shape `Termination`): who may send calls in, and where to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Termination {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cps_limit: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_phone_number: Option<String>,
    #[serde(default)]
    pub calling_regions: Vec<String>,
    #[serde(default)]
    pub cidr_allowed_list: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
}

/// Most CIDR blocks in an allowlist.
pub const MAX_CIDRS: usize = 100;
/// Most origination routes.
pub const MAX_ROUTES: usize = 20;
/// Default calls per second when a termination sets none (AWS's default).
pub const DEFAULT_CPS_LIMIT: u32 = 1;

impl Termination {
    /// Checks what the service model cannot: CIDR syntax, known calling regions, E.164.
    /// Normalises CIDRs (`10.0.0.1/24` is refused: host bits set is almost always a typo).
    pub fn validate(&mut self) -> Result<(), DomainError> {
        if self.cidr_allowed_list.len() > MAX_CIDRS {
            return Err(DomainError::invalid(
                "CidrAllowedList",
                format!(
                    "at most {MAX_CIDRS} entries, got {}",
                    self.cidr_allowed_list.len()
                ),
            ));
        }
        for cidr in &mut self.cidr_allowed_list {
            let net = parse_cidr(cidr)?;
            *cidr = net.to_string();
        }
        for region in &mut self.calling_regions {
            let up = region.to_ascii_uppercase();
            if up.parse::<phonenumber::country::Id>().is_err() {
                return Err(DomainError::invalid(
                    "CallingRegions",
                    format!(
                        "{region:?} is not an ISO 3166-1 alpha-2 country code with a numbering plan (e.g. US, CA, GB)"
                    ),
                ));
            }
            *region = up;
        }
        self.calling_regions.sort();
        self.calling_regions.dedup();
        if let Some(n) = &self.default_phone_number {
            validate_e164("DefaultPhoneNumber", n)?;
        }
        if self.cps_limit == Some(0) {
            return Err(DomainError::invalid("CpsLimit", "must be at least 1"));
        }
        Ok(())
    }

    pub fn is_enabled(&self) -> bool {
        !self.disabled.unwrap_or(false)
    }

    /// True when `ip` falls inside one of the allowlisted blocks.
    pub fn allows_source(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map(IpAddr::V4)
                .unwrap_or(IpAddr::V6(v6)),
            v4 => v4,
        };
        self.cidr_allowed_list
            .iter()
            .filter_map(|c| c.parse::<IpNet>().ok())
            .any(|net| net.contains(&ip))
    }
}

fn parse_cidr(s: &str) -> Result<IpNet, DomainError> {
    let net: IpNet = s.trim().parse().map_err(|_| {
        DomainError::invalid(
            "CidrAllowedList",
            format!(
                "{s:?} is not CIDR notation; write an address and prefix length, e.g. 10.24.34.0/32"
            ),
        )
    })?;
    if net.network() != net.addr() {
        return Err(DomainError::invalid(
            "CidrAllowedList",
            format!("{s:?} has host bits set; did you mean {}?", net.trunc()),
        ));
    }
    Ok(net)
}

/// `+` then 2 to 15 digits, not starting with 0 (ITU-T E.164).
pub fn validate_e164(field: &str, n: &str) -> Result<(), DomainError> {
    if is_e164(n) {
        Ok(())
    } else {
        Err(DomainError::invalid(
            field,
            format!("{n:?} is not an E.164 number (+ and 2 to 15 digits, e.g. +12065550100)"),
        ))
    }
}

pub fn is_e164(n: &str) -> bool {
    let Some(digits) = n.strip_prefix('+') else {
        return false;
    };
    (2..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

/// True for an ISO 3166-1 alpha-2 code (upper case) of a country with a numbering plan.
pub fn is_country_code(code: &str) -> bool {
    code.parse::<phonenumber::country::Id>().is_ok()
}

/// The ISO country of an E.164 number, from the numbering plan (`+1206…` → `US`).
pub fn country_of(e164: &str) -> Option<String> {
    let parsed = phonenumber::parse(None, e164).ok()?;
    parsed.country().id().map(|id| format!("{id:?}"))
}

/// Credentials as the API receives them. Only their digest HA1 is ever stored.
#[derive(Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Credential {
    pub username: Option<String>,
    pub password: Option<String>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// A stored termination credential: the username and HA1 = H(username:realm:password) for
/// MD5 and SHA-256 (RFC 7616 §3.4.2), so the password itself is never kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCredential {
    pub username: String,
    pub realm: String,
    pub ha1_md5: String,
    pub ha1_sha256: String,
}

impl StoredCredential {
    /// Derives the stored form from a username and password. The realm is the connector's
    /// outbound host name, which is what the SIP edge puts in its challenges.
    pub fn derive(username: &str, password: &str, realm: &str) -> Result<Self, DomainError> {
        if username.is_empty()
            || username.len() > 128
            || username.contains([':', '"', '\\'])
            || username.chars().any(char::is_control)
        {
            return Err(DomainError::invalid(
                "Credentials.Username",
                "must be 1 to 128 printable characters without ':', '\"' or '\\'",
            ));
        }
        if password.is_empty() || password.len() > 128 {
            return Err(DomainError::invalid(
                "Credentials.Password",
                "must be 1 to 128 characters",
            ));
        }
        use md5::Digest as _;
        let a1 = format!("{username}:{realm}:{password}");
        let hex = |d: &[u8]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
        Ok(StoredCredential {
            username: username.to_string(),
            realm: realm.to_string(),
            ha1_md5: hex(&md5::Md5::digest(a1.as_bytes())),
            ha1_sha256: hex(&sha2::Sha256::digest(a1.as_bytes())),
        })
    }
}

/// Origination settings (shape `Origination`): where inbound calls go.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Origination {
    #[serde(default)]
    pub routes: Vec<OriginationRoute>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct OriginationRoute {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<u8>,
}

impl Origination {
    /// The routes to try for one call, best first: lowest Priority first; among equal
    /// priorities a weighted random order, so Weight splits first attempts in proportion
    /// (see [`crate::weighted::order`]). `pick(n)` returns a random value in `0..n`.
    pub fn order(&self, pick: &mut impl FnMut(u32) -> u32) -> Vec<&OriginationRoute> {
        origination_order(&self.routes, pick)
    }

    pub fn validate(&self) -> Result<(), DomainError> {
        if self.routes.len() > MAX_ROUTES {
            return Err(DomainError::invalid(
                "Routes",
                format!("at most {MAX_ROUTES} routes, got {}", self.routes.len()),
            ));
        }
        for (i, r) in self.routes.iter().enumerate() {
            let host = r.host.as_deref().unwrap_or("");
            if host.is_empty() || !is_host(host) {
                return Err(DomainError::invalid(
                    format!("Routes[{i}].Host"),
                    format!("{host:?} is not a host name or IP address"),
                ));
            }
            for (field, value) in [
                ("Protocol", r.protocol.is_none()),
                ("Priority", r.priority.is_none()),
                ("Weight", r.weight.is_none()),
            ] {
                if value {
                    return Err(DomainError::invalid(
                        format!("Routes[{i}].{field}"),
                        "is required",
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Origination routes in call order: lowest Priority first, Weight splitting equal
/// priorities (weighted choice without replacement). Missing values count as priority 1 and
/// weight 1 (validation requires both).
pub fn origination_order<'a>(
    routes: &'a [OriginationRoute],
    pick: &mut impl FnMut(u32) -> u32,
) -> Vec<&'a OriginationRoute> {
    crate::weighted::order(
        routes,
        |r| {
            (
                u32::from(r.priority.unwrap_or(1)),
                u32::from(r.weight.unwrap_or(1)),
            )
        },
        pick,
    )
}

/// A host name (RFC 1123 labels) or an IP address.
pub fn is_host(h: &str) -> bool {
    if h.parse::<IpAddr>().is_ok() {
        return true;
    }
    h.len() <= 253
        && h.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Logging settings (shape `LoggingConfiguration`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LoggingConfiguration {
    #[serde(rename = "EnableSIPLogs", skip_serializing_if = "Option::is_none")]
    pub enable_sip_logs: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_media_metric_logs: Option<bool>,
}

/// Shape `TerminationHealth`: when and from where the last OPTIONS ping arrived.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TerminationHealth {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// A phone number in the inventory (shape `PhoneNumber`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PhoneNumber {
    pub phone_number_id: String,
    #[serde(rename = "E164PhoneNumber")]
    pub e164_phone_number: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(rename = "Type")]
    pub number_type: String,
    pub product_type: String,
    pub status: String,
    pub capabilities: serde_json::Value,
    pub associations: Vec<PhoneNumberAssociation>,
    /// The caller name shown on outbound calls (CNAM), 2 to 15 letters, digits or spaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calling_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calling_name_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub created_timestamp: String,
    pub updated_timestamp: String,
    /// Set while the number is in the deletion queue (Status `DeleteInProgress`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<String>,
}

/// Where an inbound call to a number goes (see [`PhoneNumber::route`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NumberRoute {
    VoiceConnector(String),
    VoiceConnectorGroup(String),
}

/// Status of a number in the deletion queue.
pub const DELETE_IN_PROGRESS: &str = "DeleteInProgress";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PhoneNumberAssociation {
    pub value: String,
    pub name: String,
    pub associated_timestamp: String,
}

impl PhoneNumber {
    /// A new, unassigned inventory entry. The id is the E.164 number itself, as AWS does.
    pub fn new(e164: &str, now: &str) -> Result<Self, DomainError> {
        validate_e164("E164PhoneNumber", e164)?;
        let toll_free = is_toll_free(e164);
        Ok(PhoneNumber {
            phone_number_id: e164.to_string(),
            e164_phone_number: e164.to_string(),
            country: country_of(e164),
            number_type: if toll_free { "TollFree" } else { "Local" }.to_string(),
            product_type: "VoiceConnector".to_string(),
            status: "Unassigned".to_string(),
            capabilities: serde_json::json!({
                "InboundCall": true, "OutboundCall": true,
                "InboundSMS": false, "OutboundSMS": false, "InboundMMS": false, "OutboundMMS": false
            }),
            associations: Vec::new(),
            calling_name: None,
            calling_name_status: None,
            name: None,
            created_timestamp: now.to_string(),
            updated_timestamp: now.to_string(),
            deletion_timestamp: None,
        })
    }

    /// The voice connector this number is associated with, if any.
    pub fn voice_connector(&self) -> Option<&str> {
        self.associations
            .iter()
            .find(|a| a.name == "VoiceConnectorId")
            .map(|a| a.value.as_str())
    }

    /// The voice connector group this number is associated with, if any.
    pub fn voice_connector_group(&self) -> Option<&str> {
        self.associations
            .iter()
            .find(|a| a.name == "VoiceConnectorGroupId")
            .map(|a| a.value.as_str())
    }

    /// True while the number is in the deletion queue.
    pub fn is_deleted(&self) -> bool {
        self.status == DELETE_IN_PROGRESS
    }

    /// Where inbound calls to this number go: its connector or its group; `None` when it is
    /// unassigned or being deleted.
    pub fn route(&self) -> Option<NumberRoute> {
        if self.is_deleted() {
            return None;
        }
        if let Some(vc) = self.voice_connector() {
            return Some(NumberRoute::VoiceConnector(vc.to_string()));
        }
        self.voice_connector_group()
            .map(|g| NumberRoute::VoiceConnectorGroup(g.to_string()))
    }
}

fn is_toll_free(e164: &str) -> bool {
    // NANP toll-free area codes (800, 833, 844, 855, 866, 877, 888).
    [
        "+1800", "+1833", "+1844", "+1855", "+1866", "+1877", "+1888",
    ]
    .iter()
    .any(|p| e164.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn termination_validation() {
        let mut t = Termination {
            cidr_allowed_list: vec!["127.0.0.1/32".into(), " 10.24.34.0/24".into()],
            calling_regions: vec!["us".into(), "US".into(), "CA".into()],
            ..Default::default()
        };
        t.validate().expect("valid");
        assert_eq!(t.cidr_allowed_list, ["127.0.0.1/32", "10.24.34.0/24"]);
        assert_eq!(t.calling_regions, ["CA", "US"]);
        assert!(t.allows_source("127.0.0.1".parse().expect("ip")));
        assert!(t.allows_source("::ffff:10.24.34.7".parse().expect("ip")));
        assert!(!t.allows_source("127.0.0.2".parse().expect("ip")));

        for bad in ["10.0.0.300/32", "banana", "10.0.0.1/24", "10.0.0.0/33"] {
            let mut t = Termination {
                cidr_allowed_list: vec![bad.into()],
                ..Default::default()
            };
            let err = t.validate().expect_err(bad);
            assert!(
                matches!(err, DomainError::Invalid { ref field, .. } if field == "CidrAllowedList"),
                "{err}"
            );
        }
        let mut t = Termination {
            calling_regions: vec!["XX".into()],
            ..Default::default()
        };
        assert!(t.validate().is_err());
    }

    #[test]
    fn credentials_keep_only_ha1() {
        // RFC 2617 §3.5 example: HA1 of Mufasa:testrealm@host.com:Circle Of Life.
        let c = StoredCredential::derive("Mufasa", "Circle Of Life", "testrealm@host.com")
            .expect("valid");
        assert_eq!(c.ha1_md5, "939e7578ed9e3c518a452acee763bce9");
        assert_eq!(c.ha1_sha256.len(), 64);
        assert!(StoredCredential::derive("a:b", "p", "r").is_err());
        assert!(StoredCredential::derive("a", "", "r").is_err());
    }

    #[test]
    fn e164() {
        assert!(is_e164("+12065550100"));
        assert!(!is_e164("12065550100"));
        assert!(!is_e164("+0123"));
        assert!(!is_e164("+1234567890123456"));
        assert_eq!(country_of("+12065550100").as_deref(), Some("US"));
        assert_eq!(country_of("+442079460000").as_deref(), Some("GB"));
    }

    #[test]
    fn origination_routes() {
        let route = |host: &str| OriginationRoute {
            host: Some(host.into()),
            port: Some(5060),
            protocol: Some("UDP".into()),
            priority: Some(1),
            weight: Some(1),
        };
        Origination {
            routes: vec![route("pbx.example.com"), route("10.0.0.1")],
            disabled: None,
        }
        .validate()
        .expect("valid");
        let err = Origination {
            routes: vec![route("bad host")],
            disabled: None,
        }
        .validate()
        .expect_err("bad");
        assert!(err.to_string().contains("Routes[0].Host"));
    }

    #[test]
    fn origination_order_by_priority_then_weight() {
        use rand::{Rng, SeedableRng};
        let route = |host: &str, priority: u8, weight: u8| OriginationRoute {
            host: Some(host.into()),
            port: Some(5060),
            protocol: Some("UDP".into()),
            priority: Some(priority),
            weight: Some(weight),
        };
        let o = Origination {
            routes: vec![
                route("second-a", 2, 1),
                route("first", 1, 1),
                route("second-b", 2, 3),
            ],
            disabled: None,
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let mut pick = |n: u32| rng.random_range(0..n);
        let mut b_second = 0u32;
        for _ in 0..4000 {
            let order: Vec<_> = o
                .order(&mut pick)
                .iter()
                .map(|r| r.host.clone().unwrap_or_default())
                .collect();
            assert_eq!(order.len(), 3);
            assert_eq!(order[0], "first");
            b_second += u32::from(order[1] == "second-b");
        }
        let share = f64::from(b_second) / 4000.0;
        assert!(
            (0.72..=0.78).contains(&share),
            "weight 3 of 4 went first in {share}"
        );
    }
}
