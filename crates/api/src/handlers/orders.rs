//! Numbers from the operator's pool (`admin add-numbers --pool`): SearchAvailablePhoneNumbers,
//! CreatePhoneNumberOrder (numbers move from the pool into the inventory),
//! GetPhoneNumberOrder, ListPhoneNumberOrders and ListSupportedPhoneNumberCountries.
//!
//! AWS's rules: a search is of one country (US unless `Country` says otherwise); a US search
//! names at least one of AreaCode, City, State or TollFreePrefix, and City comes with State;
//! elsewhere only PhoneNumberType filters, and it is required. Numbers outside the US are
//! ordered as `SipMediaApplicationDialIn`. An ordered number that is not in the pool fails
//! alone: the order is `Partial` (or `Failed` when none was acquired).

use domain::timestamp::{iso8601, now_millis};
use domain::voice_connector::PhoneNumber;
use serde_json::{Value, json};
use store::PoolSearch;

use super::{Ctx, member, next_token, opt_string, page, string};
use crate::ApiError;
use crate::numbering::classify;

/// Most numbers in one order.
const MAX_ORDER_NUMBERS: usize = 100;

/// Reads the search filters and checks AWS's combinations.
fn search_filters(input: &Value) -> Result<PoolSearch, ApiError> {
    let country = opt_string(input, "Country").unwrap_or_else(|| "US".to_string());
    let area_code = opt_string(input, "AreaCode");
    let city = opt_string(input, "City");
    let state = opt_string(input, "State");
    let toll_free = opt_string(input, "TollFreePrefix");
    let mut number_type = opt_string(input, "PhoneNumberType");
    let mut q = PoolSearch {
        country: country.clone(),
        ..PoolSearch::default()
    };
    if country != "US" {
        for (name, v) in [
            ("AreaCode", &area_code),
            ("City", &city),
            ("State", &state),
            ("TollFreePrefix", &toll_free),
        ] {
            if v.is_some() {
                return Err(ApiError::bad_request(format!(
                    "{name}: only US searches take it; search {country} numbers by PhoneNumberType"
                )));
            }
        }
        if number_type.is_none() {
            return Err(ApiError::bad_request(format!(
                "PhoneNumberType: required when searching numbers outside the US ({country})"
            )));
        }
        q.number_type = number_type;
        return Ok(q);
    }
    if area_code.is_none() && city.is_none() && state.is_none() && toll_free.is_none() {
        return Err(ApiError::bad_request(
            "AreaCode, City, State or TollFreePrefix: a US search needs at least one of them",
        ));
    }
    if city.is_some() && state.is_none() {
        return Err(ApiError::bad_request("State: required with City"));
    }
    if let Some(a) = &area_code
        && !(a.len() == 3 && a.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(ApiError::bad_request(format!(
            "AreaCode: three digits, e.g. 206 (got {a:?})"
        )));
    }
    if let Some(prefix) = toll_free {
        if area_code.is_some() || city.is_some() || state.is_some() {
            return Err(ApiError::bad_request(
                "TollFreePrefix: toll-free numbers have no AreaCode, City or State; search by one or the other",
            ));
        }
        if number_type.as_deref() == Some("Local") {
            return Err(ApiError::bad_request(
                "PhoneNumberType: Local contradicts TollFreePrefix",
            ));
        }
        number_type = Some("TollFree".to_string());
        q.area_code = Some(prefix);
    } else {
        q.area_code = area_code;
    }
    q.number_type = number_type;
    q.state = state;
    q.city = city;
    Ok(q)
}

pub(super) async fn search(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    let q = search_filters(&input)?;
    let max = input
        .get("MaxResults")
        .and_then(Value::as_u64)
        .unwrap_or(100)
        .clamp(1, 500) as u32;
    let after = opt_string(&input, "NextToken");
    if let Some(t) = &after
        && domain::voice_connector::validate_e164("NextToken", t).is_err()
    {
        return Err(ApiError::bad_request(
            "NextToken: not a token of a previous SearchAvailablePhoneNumbers answer",
        ));
    }
    let found = ctx
        .state
        .repo
        .search_pool(&q, after.as_deref(), max)
        .await?;
    let next = next_token(found.len(), max, found.last().map(String::as_str));
    Ok(json!({ "E164PhoneNumbers": found, "NextToken": next }))
}

pub(super) async fn list_countries(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    let product = string(&input, "ProductType");
    let mut countries: Vec<(String, Vec<String>)> = Vec::new();
    for (country, kind) in ctx.state.repo.pool_countries().await? {
        if product == "VoiceConnector" && country != "US" {
            continue;
        }
        match countries.last_mut() {
            Some((c, kinds)) if *c == country => kinds.push(kind),
            _ => countries.push((country, vec![kind])),
        }
    }
    let list: Vec<Value> = countries
        .into_iter()
        .map(|(c, kinds)| json!({ "CountryCode": c, "SupportedPhoneNumberTypes": kinds }))
        .collect();
    Ok(json!({ "PhoneNumberCountries": list }))
}

/// The order's status from its numbers' (`Acquired`, `Failed`).
fn order_status(numbers: &[Value]) -> &'static str {
    let acquired = numbers.iter().filter(|n| n["Status"] == "Acquired").count();
    match acquired {
        0 => "Failed",
        a if a == numbers.len() => "Successful",
        _ => "Partial",
    }
}

pub(super) async fn create_order(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    let product = string(&input, "ProductType");
    let name = opt_string(&input, "Name").filter(|n| !n.is_empty());
    let mut numbers: Vec<String> = member(&input, "E164PhoneNumbers")?;
    let mut seen = std::collections::HashSet::new();
    numbers.retain(|n| seen.insert(n.clone()));
    if numbers.is_empty() {
        return Err(ApiError::bad_request(
            "E164PhoneNumbers: at least one number",
        ));
    }
    if numbers.len() > MAX_ORDER_NUMBERS {
        return Err(ApiError::bad_request(format!(
            "E164PhoneNumbers: at most {MAX_ORDER_NUMBERS} numbers in one order (got {})",
            numbers.len()
        )));
    }
    if product == "VoiceConnector" {
        for n in &numbers {
            if let Ok(c) = classify(n)
                && c.country != "US"
            {
                return Err(ApiError::bad_request(format!(
                    "E164PhoneNumbers: {n} is a {} number; numbers outside the US are ordered with ProductType SipMediaApplicationDialIn",
                    c.country
                )));
            }
        }
    }
    let id = uuid::Uuid::new_v4().to_string();
    let created_ms = now_millis();
    let created = iso8601(created_ms);
    let mut order = json!({
        "PhoneNumberOrderId": id,
        "ProductType": product,
        "Status": "Processing",
        "OrderType": "New",
        "OrderedPhoneNumbers": numbers.iter()
            .map(|n| json!({ "E164PhoneNumber": n, "Status": "Processing" }))
            .collect::<Vec<_>>(),
        "CreatedTimestamp": created,
        "UpdatedTimestamp": created,
    });
    ctx.state.repo.put_order(&id, created_ms, &order).await?;
    // Entries for the numbers that can be inventory entries at all; the rest fail.
    let entries: Vec<PhoneNumber> = numbers
        .iter()
        .filter_map(|n| PhoneNumber::new(n, &created).ok())
        .map(|mut pn| {
            pn.product_type = product.clone();
            pn.name = name.clone();
            pn
        })
        .collect();
    let taken = ctx.state.repo.take_from_pool(&entries).await?;
    let acquired: std::collections::HashSet<&str> = entries
        .iter()
        .zip(&taken)
        .filter(|(_, t)| **t)
        .map(|(e, _)| e.phone_number_id.as_str())
        .collect();
    let ordered: Vec<Value> = numbers
        .iter()
        .map(|n| {
            let status = if acquired.contains(n.as_str()) {
                "Acquired"
            } else {
                "Failed"
            };
            json!({ "E164PhoneNumber": n, "Status": status })
        })
        .collect();
    order["Status"] = json!(order_status(&ordered));
    order["OrderedPhoneNumbers"] = json!(ordered);
    order["UpdatedTimestamp"] = json!(iso8601(now_millis()));
    ctx.state.repo.put_order(&id, created_ms, &order).await?;
    tracing::info!(order = %id, acquired = acquired.len(), asked = numbers.len(), "phone number order");
    Ok(json!({ "PhoneNumberOrder": order }))
}

pub(super) async fn get_order(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    let id = string(&input, "PhoneNumberOrderId").to_ascii_lowercase();
    let order = ctx
        .state
        .repo
        .get_order(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("phone number order {id} not found")))?;
    Ok(json!({ "PhoneNumberOrder": order }))
}

pub(super) async fn list_orders(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    let (max, after) = page(&input);
    let orders = ctx.state.repo.list_orders(after.as_deref(), max).await?;
    let last = orders.last().and_then(|o| o["PhoneNumberOrderId"].as_str());
    let next = next_token(orders.len(), max, last);
    Ok(json!({ "PhoneNumberOrders": orders, "NextToken": next }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filters(v: Value) -> Result<PoolSearch, String> {
        search_filters(&v).map_err(|e| e.to_string())
    }

    #[test]
    fn search_combinations_follow_aws() {
        let q = filters(json!({ "AreaCode": "206" })).expect("area code");
        assert_eq!(
            (q.country.as_str(), q.area_code.as_deref()),
            ("US", Some("206"))
        );
        let q = filters(json!({ "TollFreePrefix": "888" })).expect("toll-free");
        assert_eq!(q.number_type.as_deref(), Some("TollFree"));
        assert_eq!(q.area_code.as_deref(), Some("888"));
        let q = filters(json!({ "Country": "GB", "PhoneNumberType": "Local" })).expect("GB");
        assert_eq!(q.country, "GB");
        assert!(filters(json!({})).unwrap_err().contains("at least one"));
        assert!(
            filters(json!({ "City": "Seattle" }))
                .unwrap_err()
                .starts_with("State")
        );
        assert!(
            filters(json!({ "Country": "GB" }))
                .unwrap_err()
                .starts_with("PhoneNumberType")
        );
        assert!(
            filters(json!({ "Country": "GB", "PhoneNumberType": "Local", "AreaCode": "207" }))
                .unwrap_err()
                .starts_with("AreaCode")
        );
        assert!(
            filters(json!({ "TollFreePrefix": "800", "State": "WA" }))
                .unwrap_err()
                .starts_with("TollFreePrefix")
        );
        assert!(
            filters(json!({ "AreaCode": "20x" }))
                .unwrap_err()
                .starts_with("AreaCode")
        );
    }

    #[test]
    fn order_statuses() {
        let n = |s: &str| json!({ "E164PhoneNumber": "+12065550100", "Status": s });
        assert_eq!(order_status(&[n("Acquired"), n("Acquired")]), "Successful");
        assert_eq!(order_status(&[n("Acquired"), n("Failed")]), "Partial");
        assert_eq!(order_status(&[n("Failed")]), "Failed");
    }
}
