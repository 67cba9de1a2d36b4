//! What a number is, for the operator's pool: its country and whether it is toll-free, from
//! the numbering-plan metadata of the `phonenumber` crate, and its area code under the North
//! American Numbering Plan (country code 1: a three-digit area code, then seven digits).
//! Used by SearchAvailablePhoneNumbers' filters and by `admin add-numbers --pool`.

use phonenumber::Type;
use phonenumber::metadata::DATABASE;
use store::{PoolNumber, Repository};

/// NANP area codes set aside for toll-free numbers (AWS's `TollFreePrefix` values).
pub const TOLL_FREE_PREFIXES: [&str; 7] = ["800", "833", "844", "855", "866", "877", "888"];

/// A number's country, type and area code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    /// ISO 3166-1 alpha-2.
    pub country: String,
    /// `Local` or `TollFree`.
    pub number_type: &'static str,
    /// The NANP area code; empty outside country code 1.
    pub area_code: String,
}

/// Classifies an E.164 number (`+` and 2 to 15 digits). The error says why it cannot be.
pub fn classify(e164: &str) -> Result<Classified, String> {
    domain::voice_connector::validate_e164("E164PhoneNumber", e164).map_err(|e| e.to_string())?;
    let parsed = phonenumber::parse(None, e164)
        .map_err(|e| format!("{e164} is not a number of any numbering plan: {e}"))?;
    let country = parsed
        .country()
        .id()
        .map(|id| format!("{id:?}"))
        .ok_or_else(|| format!("{e164} belongs to no country's numbering plan"))?;
    let national = parsed.national().value().to_string();
    let area_code = if parsed.code().value() == 1 && national.len() == 10 {
        national[..3].to_string()
    } else {
        String::new()
    };
    let toll_free = parsed.number_type(&DATABASE) == Type::TollFree
        || TOLL_FREE_PREFIXES.contains(&area_code.as_str());
    Ok(Classified {
        country,
        number_type: if toll_free { "TollFree" } else { "Local" },
        area_code,
    })
}

/// `admin add-numbers --pool`: puts numbers in the operator's pool, with the US state and
/// city they serve when the operator gives them. Returns a line per number.
pub async fn add_to_pool(
    repo: &dyn Repository,
    numbers: &[String],
    state: Option<&str>,
    city: Option<&str>,
) -> Result<Vec<String>, String> {
    let state = state.unwrap_or("").trim().to_ascii_uppercase();
    let two_letters = state.len() == 2 && state.bytes().all(|b| b.is_ascii_uppercase());
    if !state.is_empty() && !two_letters {
        return Err(format!(
            "--state {state:?}: a two-letter US state code (e.g. WA)"
        ));
    }
    let city = city.unwrap_or("").trim().to_string();
    if city.chars().count() > 100 {
        return Err("--city: at most 100 characters".to_string());
    }
    let mut lines = Vec::with_capacity(numbers.len());
    for n in numbers {
        let c = classify(n)?;
        let entry = PoolNumber {
            e164: n.clone(),
            country: c.country.clone(),
            number_type: c.number_type.to_string(),
            area_code: c.area_code,
            state: state.clone(),
            city: city.clone(),
        };
        let added = repo
            .add_pool_number(&entry)
            .await
            .map_err(|e| format!("{n}: {e}"))?;
        lines.push(if added {
            format!("added {n} to the pool ({} {})", c.country, c.number_type)
        } else {
            format!("{n} is already in the pool or the inventory")
        });
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn countries_types_and_area_codes() {
        let us = classify("+12065550100").expect("US");
        assert_eq!(
            (us.country.as_str(), us.number_type, us.area_code.as_str()),
            ("US", "Local", "206")
        );
        let tf = classify("+18885550100").expect("toll-free");
        assert_eq!((tf.number_type, tf.area_code.as_str()), ("TollFree", "888"));
        let ca = classify("+14165550100").expect("CA");
        assert_eq!((ca.country.as_str(), ca.area_code.as_str()), ("CA", "416"));
        let gb = classify("+442079460000").expect("GB");
        assert_eq!(
            (gb.country.as_str(), gb.number_type, gb.area_code.as_str()),
            ("GB", "Local", "")
        );
        let gb_free = classify("+448001111111").expect("GB freephone");
        assert_eq!(gb_free.number_type, "TollFree");
        assert!(classify("12065550100").is_err());
        assert!(classify("+999123").is_err());
    }
}
