//! Serde helpers for action parameters. AWS's own examples write numbers both ways
//! (`"Repeat": "5"`, `"Repeat": 3`), and real functions follow them, so numeric parameters
//! take a JSON number or a string of digits.

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
#[serde(untagged)]
enum NumOrString {
    Num(serde_json::Number),
    Str(String),
}

fn to_u64<E: de::Error>(v: NumOrString) -> Result<u64, E> {
    match v {
        NumOrString::Num(n) => n
            .as_u64()
            .ok_or_else(|| E::custom(format!("{n} is not a whole number of at least 0"))),
        NumOrString::Str(s) => s
            .trim()
            .parse::<u64>()
            .map_err(|_| E::custom(format!("{s:?} is not a whole number of at least 0"))),
    }
}

/// An optional whole number, as a number or a string of digits.
pub(crate) fn opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    match Option::<NumOrString>::deserialize(d)? {
        None => Ok(None),
        Some(NumOrString::Str(s)) if s.trim().is_empty() => Ok(None),
        Some(v) => to_u64(v).map(Some),
    }
}

/// A required whole number, as a number or a string of digits.
pub(crate) fn req_u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    to_u64(NumOrString::deserialize(d)?)
}

/// A boolean, also as the strings `"true"`/`"false"`.
pub(crate) fn req_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum BoolOrString {
        Bool(bool),
        Str(String),
    }
    match BoolOrString::deserialize(d)? {
        BoolOrString::Bool(b) => Ok(b),
        BoolOrString::Str(s) => match s.to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(de::Error::custom(format!("{s:?} is not true or false"))),
        },
    }
}

/// Which leg of the call an action applies to (`LEG-A` is the call that started the
/// transaction, `LEG-B` the one a CallAndBridge or JoinChimeMeeting made).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ParticipantTag {
    #[serde(rename = "LEG-A")]
    LegA,
    #[serde(rename = "LEG-B")]
    LegB,
}
