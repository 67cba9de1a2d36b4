//! SipMediaApplicationLoggingConfiguration's message logs: with
//! `EnableSipMediaApplicationMessageLogs` set on an application, every event its calls send
//! the function and every answer the function gives is logged (target `sma_messages`, one
//! line each, the JSON under `body`), where AWS would write them to CloudWatch Logs.
//! Join tokens are credentials: they are never logged, in events or in answers.

use domain::sma::action::{ActionList, FunctionResponse};
use domain::sma::event::InvocationEvent;
use serde_json::Value;

/// The message log of one call, when its application has message logs on.
pub struct MessageLog {
    application: String,
    transaction: String,
}

impl MessageLog {
    /// The call's log, if the application's logging configuration asks for one (a store
    /// that fails leaves the call without: logged, never fatal).
    pub async fn for_call(
        repo: &dyn store::Repository,
        application: &str,
        transaction: &str,
    ) -> Option<MessageLog> {
        let setting = repo
            .get_sma_setting(application, store::SmaSettingKind::Logging)
            .await;
        let on = match setting {
            Ok(Some(v)) => v
                .get("EnableSipMediaApplicationMessageLogs")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            Ok(None) => false,
            Err(e) => {
                tracing::warn!(application, error = %e, "the logging configuration could not be read; no message logs for this call");
                false
            }
        };
        on.then(|| MessageLog {
            application: application.to_string(),
            transaction: transaction.to_string(),
        })
    }

    /// An event on its way to the function.
    pub fn event(&self, e: &InvocationEvent) {
        let mut v = serde_json::to_value(e).unwrap_or(Value::Null);
        redact(&mut v);
        self.line("event", &v);
    }

    /// The function's valid answer.
    pub fn answer(&self, a: &FunctionResponse) {
        let mut v = match &a.actions {
            ActionList::Keep => serde_json::json!({ "Actions": null }),
            ActionList::Replace(list) => {
                let actions: Vec<Value> = list
                    .iter()
                    .map(|x| serde_json::json!({"Type": x.type_name(), "Parameters": x.parameters}))
                    .collect();
                serde_json::json!({ "Actions": actions })
            }
        };
        if let Some(attrs) = &a.transaction_attributes {
            v["TransactionAttributes"] = serde_json::json!(attrs);
        }
        redact(&mut v);
        self.line("answer", &v);
    }

    /// An answer that was refused (INVALID_LAMBDA_RESPONSE follows) or never came.
    pub fn failed(&self, why: &str) {
        tracing::info!(target: "sma_messages", application = %self.application, transaction = %self.transaction, kind = "failed", reason = why, "SIP media application message");
    }

    fn line(&self, kind: &str, v: &Value) {
        tracing::info!(target: "sma_messages", application = %self.application, transaction = %self.transaction, kind, body = %v, "SIP media application message");
    }
}

/// Every `JoinToken` value in the document replaced.
fn redact(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, x) in map.iter_mut() {
                if k == "JoinToken" {
                    *x = Value::String("<redacted>".into());
                } else {
                    redact(x);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn join_tokens_are_redacted_wherever_they_are() {
        let mut v = serde_json::json!({"Actions": [{"Type": "JoinChimeMeeting",
            "Parameters": {"JoinToken": "secret", "MeetingId": "m"}}],
            "ActionData": {"Parameters": {"JoinToken": "secret2"}}});
        super::redact(&mut v);
        let s = v.to_string();
        assert!(
            !s.contains("secret") && s.contains("\"MeetingId\":\"m\""),
            "{s}"
        );
    }
}
