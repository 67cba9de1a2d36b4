//! Emergency calls through a voice connector (issue 18): AWS's
//! `EmergencyCallingConfiguration` maps each calling country to the number of the operator's
//! emergency call routing provider (its DNIS), and a second one for test calls. A PBX that
//! dials its country's emergency number (911, 112, 999, …) through the connector is sent on to
//! that DNIS, only through carriers the operator marked for emergency calls; a call the
//! configuration does not cover is refused with a reason, never sent to an ordinary trunk.
//!
//! Pure functions: the edge reads the configuration and the carriers and applies them.

use serde::{Deserialize, Serialize};

use crate::voice_connector::{country_of, is_country_code};

/// One row of the configuration: calls from `calling_country` go to `emergency_phone_number`,
/// test calls to `test_phone_number`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Dnis {
    pub emergency_phone_number: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_phone_number: Option<String>,
    pub calling_country: String,
}

/// AWS's `EmergencyCallingConfiguration` as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct EmergencyCallingConfiguration {
    #[serde(rename = "DNIS", default)]
    pub dnis: Vec<Dnis>,
}

/// What a dialled number is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmergencyKind {
    /// The country's emergency number: routed to the DNIS's EmergencyPhoneNumber.
    Emergency,
    /// The country's test number (933 in the US): routed to its TestPhoneNumber.
    Test,
}

impl EmergencyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EmergencyKind::Emergency => "emergency",
            EmergencyKind::Test => "emergency test",
        }
    }
}

/// The emergency and test numbers dialled in `country` (ISO 3166-1 alpha-2). 112 is
/// answered in every country that runs GSM networks and is taken everywhere; the national
/// numbers are those of the countries listed. The US's 933 is the test number carriers and
/// emergency routing providers answer with the caller's registered address.
fn numbers_of(country: &str) -> (&'static [&'static str], &'static [&'static str]) {
    match country {
        "US" | "PR" | "GU" | "VI" | "AS" | "MP" => (&["911", "112"], &["933"]),
        "CA" | "MX" | "PA" | "PH" => (&["911", "112"], &[]),
        "GB" | "IE" | "HK" | "MY" | "SG" => (&["999", "112"], &[]),
        "AU" => (&["000", "112", "106"], &[]),
        "NZ" => (&["111", "112"], &[]),
        "JP" => (&["110", "119", "118", "112"], &[]),
        "IN" => (&["112", "100", "101", "102"], &[]),
        "CN" => (&["110", "119", "120", "112"], &[]),
        "BR" => (&["190", "192", "193", "112"], &[]),
        "ZA" => (&["10111", "10177", "112"], &[]),
        _ => (&["112"], &[]),
    }
}

/// Whether `dialled` (the Request-URI user, with or without a leading `+`, as PBXs send
/// short codes both ways) is an emergency or test number for a caller in `country`.
pub fn classify(dialled: &str, country: &str) -> Option<EmergencyKind> {
    let d = dialled.strip_prefix('+').unwrap_or(dialled);
    let (emergency, test) = numbers_of(country);
    if emergency.contains(&d) {
        Some(EmergencyKind::Emergency)
    } else if test.contains(&d) {
        Some(EmergencyKind::Test)
    } else {
        None
    }
}

/// Whether `dialled` is an emergency or test number in any country we know: such a number
/// is never sent to an ordinary carrier even when the caller's country is not known.
pub fn is_short_code_anywhere(dialled: &str) -> bool {
    const KNOWN: &[&str] = &[
        "US", "CA", "GB", "AU", "NZ", "JP", "IN", "CN", "BR", "ZA", "DE",
    ];
    KNOWN.iter().any(|c| classify(dialled, c).is_some())
}

/// Where an emergency call goes: the DNIS number and what kind of call it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmergencyRoute {
    pub kind: EmergencyKind,
    /// The number dialled (911).
    pub dialled: String,
    /// The caller's country the DNIS row was chosen by.
    pub country: String,
    /// The routing provider's number the call goes on to, E.164.
    pub number: String,
}

/// Why an emergency call cannot be routed. The text tells the operator what to configure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmergencyRefusal {
    #[error(
        "{kind} call to {dialled}: the caller's country is not known (send an E.164 From, or set the termination's DefaultPhoneNumber)"
    )]
    CallerCountryUnknown { kind: &'static str, dialled: String },
    #[error(
        "{kind} call to {dialled} from {country}: voice connector {vc} has no EmergencyCallingConfiguration DNIS for {country}; call PutVoiceConnectorEmergencyCallingConfiguration"
    )]
    NotConfigured {
        kind: &'static str,
        dialled: String,
        country: String,
        vc: String,
    },
    #[error(
        "emergency test call to {dialled} from {country}: the DNIS for {country} on voice connector {vc} has no TestPhoneNumber"
    )]
    NoTestNumber {
        dialled: String,
        country: String,
        vc: String,
    },
}

/// The caller's country: its From number's, else the DefaultPhoneNumber's it is sent with.
pub fn caller_country(from_user: &str, caller_id: Option<&str>) -> Option<String> {
    country_of(from_user).or_else(|| caller_id.and_then(country_of))
}

/// Routes a call to `dialled` from a caller in `country` (None: unknown) on voice connector
/// `vc` with `config` (None: the connector has none). `Ok(None)`: not an emergency number.
pub fn route(
    vc: &str,
    config: Option<&EmergencyCallingConfiguration>,
    dialled: &str,
    country: Option<&str>,
) -> Result<Option<EmergencyRoute>, EmergencyRefusal> {
    let Some(country) = country.filter(|c| is_country_code(c)) else {
        if is_short_code_anywhere(dialled) {
            return Err(EmergencyRefusal::CallerCountryUnknown {
                kind: EmergencyKind::Emergency.as_str(),
                dialled: dialled.to_string(),
            });
        }
        return Ok(None);
    };
    let Some(kind) = classify(dialled, country) else {
        return Ok(None);
    };
    let row = config.and_then(|c| c.dnis.iter().find(|d| d.calling_country == country));
    let Some(row) = row else {
        return Err(EmergencyRefusal::NotConfigured {
            kind: kind.as_str(),
            dialled: dialled.to_string(),
            country: country.to_string(),
            vc: vc.to_string(),
        });
    };
    let number = match kind {
        EmergencyKind::Emergency => row.emergency_phone_number.clone(),
        EmergencyKind::Test => match &row.test_phone_number {
            Some(t) => t.clone(),
            None => {
                return Err(EmergencyRefusal::NoTestNumber {
                    dialled: dialled.to_string(),
                    country: country.to_string(),
                    vc: vc.to_string(),
                });
            }
        },
    };
    Ok(Some(EmergencyRoute {
        kind,
        dialled: dialled.to_string(),
        country: country.to_string(),
        number,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> EmergencyCallingConfiguration {
        serde_json::from_value(serde_json::json!({
            "DNIS": [
                {"EmergencyPhoneNumber": "+12025550911", "TestPhoneNumber": "+12025550933", "CallingCountry": "US"},
                {"EmergencyPhoneNumber": "+12025550999", "CallingCountry": "GB"},
            ]
        }))
        .unwrap()
    }

    #[test]
    fn national_numbers_route_to_the_callers_country_dnis() {
        let c = config();
        let r = route("vc1", Some(&c), "911", Some("US")).unwrap().unwrap();
        assert_eq!(r.kind, EmergencyKind::Emergency);
        assert_eq!(r.number, "+12025550911");
        let r = route("vc1", Some(&c), "+999", Some("GB")).unwrap().unwrap();
        assert_eq!(r.number, "+12025550999");
        let r = route("vc1", Some(&c), "112", Some("GB")).unwrap().unwrap();
        assert_eq!(r.number, "+12025550999");
        let t = route("vc1", Some(&c), "933", Some("US")).unwrap().unwrap();
        assert_eq!(
            (t.kind, t.number.as_str()),
            (EmergencyKind::Test, "+12025550933")
        );
    }

    #[test]
    fn ordinary_numbers_are_not_emergency_calls() {
        let c = config();
        assert_eq!(route("vc1", Some(&c), "+14155550100", Some("US")), Ok(None));
        // 999 is not an emergency number in the US; it is dialled as any other number.
        assert_eq!(route("vc1", Some(&c), "999", Some("US")), Ok(None));
        assert_eq!(route("vc1", None, "+14155550100", None), Ok(None));
    }

    #[test]
    fn refusals_name_what_to_configure() {
        let c = config();
        let e = route("vc1", None, "911", Some("US")).unwrap_err();
        assert!(
            e.to_string()
                .contains("PutVoiceConnectorEmergencyCallingConfiguration"),
            "{e}"
        );
        let e = route("vc1", Some(&c), "112", Some("DE")).unwrap_err();
        assert!(
            matches!(e, EmergencyRefusal::NotConfigured { ref country, .. } if country == "DE")
        );
        let e = route("vc1", Some(&c), "933", Some("US")).unwrap();
        assert!(e.is_some());
        let no_test = EmergencyCallingConfiguration {
            dnis: vec![Dnis {
                test_phone_number: None,
                ..c.dnis[0].clone()
            }],
        };
        let e = route("vc1", Some(&no_test), "933", Some("US")).unwrap_err();
        assert!(matches!(e, EmergencyRefusal::NoTestNumber { .. }), "{e}");
        let e = route("vc1", Some(&c), "911", None).unwrap_err();
        assert!(
            matches!(e, EmergencyRefusal::CallerCountryUnknown { .. }),
            "{e}"
        );
    }

    #[test]
    fn the_caller_country_comes_from_the_from_number_or_the_default() {
        assert_eq!(caller_country("+12065550100", None).as_deref(), Some("US"));
        assert_eq!(
            caller_country("alice", Some("+442071838750")).as_deref(),
            Some("GB")
        );
        assert_eq!(caller_country("alice", None), None);
    }
}
