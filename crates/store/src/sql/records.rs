//! The PSTN fields of a call record (issue 12 §6) kept as columns beside its JSON document,
//! so an operator can query them in SQL (calls per carrier, per destination country,
//! billable seconds): Direction, source and destination numbers and countries, the carrier,
//! every attempt (JSON text) and BillableDurationSeconds. All nullable: a meeting join has
//! no carrier, and older records have none of them.

use serde_json::Value;
use sqlx::Any;
use sqlx::any::AnyArguments;
use sqlx::query::Query;

/// A call's final record replaces its open one (and a retry of itself), columns too.
pub(super) const INSERT_RECORD: &str = "INSERT INTO call_records (id, vc_id, start_ms, body, \
     direction, source_number, source_country, destination_number, destination_country, \
     carrier, attempts, billable_seconds) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
     ON CONFLICT (id) DO UPDATE SET body = excluded.body, direction = excluded.direction, \
     source_number = excluded.source_number, source_country = excluded.source_country, \
     destination_number = excluded.destination_number, \
     destination_country = excluded.destination_country, carrier = excluded.carrier, \
     attempts = excluded.attempts, billable_seconds = excluded.billable_seconds";
/// A call's open record never replaces anything: if the final record got there first, it stays.
pub(super) const OPEN_RECORD: &str = "INSERT INTO call_records (id, vc_id, start_ms, body, \
     direction, source_number, source_country, destination_number, destination_country, \
     carrier, attempts, billable_seconds) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (id) DO NOTHING";

/// The column values of one record, read from its document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct RecordColumns {
    direction: Option<String>,
    source_number: Option<String>,
    source_country: Option<String>,
    destination_number: Option<String>,
    destination_country: Option<String>,
    carrier: Option<String>,
    attempts: Option<String>,
    billable_seconds: Option<i64>,
}

fn text(body: &Value, name: &str) -> Option<String> {
    body.get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// The document's country, else the number's (E.164 country calling code); `None` when
/// the number is not E.164 or its code is unassigned.
fn country(body: &Value, field: &str, number: Option<&str>) -> Option<String> {
    text(body, field).or_else(|| {
        number
            .filter(|n| domain::voice_connector::is_e164(n))
            .and_then(domain::voice_connector::country_of)
    })
}

impl RecordColumns {
    pub(super) fn of(body: &Value) -> RecordColumns {
        let source_number = text(body, "SourcePhoneNumber");
        let destination_number = text(body, "DestinationPhoneNumber");
        RecordColumns {
            direction: text(body, "Direction"),
            source_country: country(body, "SourceCountry", source_number.as_deref()),
            destination_country: country(body, "DestinationCountry", destination_number.as_deref()),
            source_number,
            destination_number,
            carrier: text(body, "Carrier"),
            attempts: body
                .get("Attempts")
                .filter(|a| a.as_array().is_some_and(|a| !a.is_empty()))
                .map(Value::to_string),
            billable_seconds: body.get("BillableDurationSeconds").and_then(Value::as_i64),
        }
    }

    /// Binds parameters `$5` to `$12` of [`INSERT_RECORD`] / [`OPEN_RECORD`].
    pub(super) fn bind<'q>(
        &'q self,
        q: Query<'q, Any, AnyArguments>,
    ) -> Query<'q, Any, AnyArguments> {
        q.bind(self.direction.as_deref())
            .bind(self.source_number.as_deref())
            .bind(self.source_country.as_deref())
            .bind(self.destination_number.as_deref())
            .bind(self.destination_country.as_deref())
            .bind(self.carrier.as_deref())
            .bind(self.attempts.as_deref())
            .bind(self.billable_seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn columns_from_a_pstn_record() {
        let c = RecordColumns::of(&json!({
            "Direction": "Outbound",
            "SourcePhoneNumber": "+12065550100",
            "DestinationPhoneNumber": "+442079460000",
            "Carrier": "telco-a",
            "Attempts": [{"Route": "telco-b", "StatusCode": 503}, {"Route": "telco-a", "StatusCode": 200}],
            "BillableDurationSeconds": 61,
        }));
        assert_eq!(c.direction.as_deref(), Some("Outbound"));
        assert_eq!(c.source_country.as_deref(), Some("US"));
        assert_eq!(c.destination_country.as_deref(), Some("GB"));
        assert_eq!(c.carrier.as_deref(), Some("telco-a"));
        assert_eq!(c.billable_seconds, Some(61));
        let attempts: Value =
            serde_json::from_str(c.attempts.as_deref().expect("attempts")).expect("json");
        assert_eq!(attempts[0]["StatusCode"], 503);
    }

    #[test]
    fn a_join_record_leaves_the_pstn_columns_empty() {
        let c = RecordColumns::of(&json!({
            "Direction": "Outbound",
            "SourcePhoneNumber": "alice",
            "DestinationPhoneNumber": "+17035550122",
            "Attempts": [],
        }));
        assert_eq!(c.source_country, None, "not an E.164 number");
        assert_eq!(c.destination_country.as_deref(), Some("US"));
        assert_eq!(
            (c.carrier, c.attempts, c.billable_seconds),
            (None, None, None)
        );
        assert_eq!(RecordColumns::of(&json!({})), RecordColumns::default());
    }
}
