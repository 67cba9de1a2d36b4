//! A function's answer, parsed and validated as AWS does:
//!
//! ```json
//! { "SchemaVersion": "1.0", "Actions": [ { "Type": "...", "Parameters": { ... } } ],
//!   "TransactionAttributes": { "key": "value" } }
//! ```
//!
//! - `Actions` absent or null keeps the actions being run; `[]` stops them.
//! - At most [`MAX_ACTIONS`] actions; an unknown `Type` or a missing required parameter
//!   refuses the whole answer (the call flow then sends INVALID_LAMBDA_RESPONSE).
//! - `TransactionAttributes` absent or null keeps the current ones; an object replaces
//!   them: at most [`MAX_TRANSACTION_ATTRIBUTES`] pairs of strings, at most
//!   [`MAX_TRANSACTION_ATTRIBUTES_BYTES`] of keys and values together.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::action::{Action, required, typed};
use super::event::SCHEMA_VERSION;

/// Most actions in one answer.
pub const MAX_ACTIONS: usize = 10;
/// Most transaction attributes.
pub const MAX_TRANSACTION_ATTRIBUTES: usize = 100;
/// Most bytes of transaction-attribute keys and values together (20 KB).
pub const MAX_TRANSACTION_ATTRIBUTES_BYTES: usize = 20 * 1024;

/// What the answer does to the actions being run.
#[derive(Debug, Clone, PartialEq)]
pub enum ActionList {
    /// `Actions` was absent or null: carry on with the current actions.
    Keep,
    /// Run these instead (empty: stop the current ones and wait).
    Replace(Vec<Action>),
}

/// A valid answer.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionResponse {
    pub actions: ActionList,
    /// `None`: keep the transaction's attributes as they are.
    pub transaction_attributes: Option<BTreeMap<String, String>>,
}

/// Why an answer was refused; `kind` becomes the ErrorType of the INVALID_LAMBDA_RESPONSE
/// event, `message` its ErrorMessage.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", kind.as_str())]
pub struct InvalidResponse {
    pub kind: InvalidResponseKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidResponseKind {
    /// Not JSON, or not a JSON object.
    MalformedResponse,
    /// SchemaVersion missing or not "1.0".
    UnsupportedSchemaVersion,
    TooManyActions,
    /// An action of a type there is no such action.
    InvalidActionType,
    MissingRequiredParameter,
    InvalidActionParameter,
    InvalidTransactionAttributes,
}

impl InvalidResponseKind {
    pub fn as_str(self) -> &'static str {
        match self {
            InvalidResponseKind::MalformedResponse => "MalformedResponse",
            InvalidResponseKind::UnsupportedSchemaVersion => "UnsupportedSchemaVersion",
            InvalidResponseKind::TooManyActions => "TooManyActions",
            InvalidResponseKind::InvalidActionType => "InvalidActionType",
            InvalidResponseKind::MissingRequiredParameter => "MissingRequiredParameter",
            InvalidResponseKind::InvalidActionParameter => "InvalidActionParameter",
            InvalidResponseKind::InvalidTransactionAttributes => "InvalidTransactionAttributes",
        }
    }
}

fn refuse(kind: InvalidResponseKind, message: impl Into<String>) -> InvalidResponse {
    InvalidResponse {
        kind,
        message: message.into(),
    }
}

/// Parses and validates a function's answer (the response body of a webhook, or the
/// payload of a Lambda Invoke).
pub fn parse_response(body: &[u8]) -> Result<FunctionResponse, InvalidResponse> {
    use InvalidResponseKind as K;
    let doc: Value = serde_json::from_slice(body)
        .map_err(|e| refuse(K::MalformedResponse, format!("the answer is not JSON: {e}")))?;
    let Value::Object(doc) = doc else {
        return Err(refuse(
            K::MalformedResponse,
            "the answer must be a JSON object",
        ));
    };
    match doc.get("SchemaVersion") {
        Some(Value::String(v)) if v == SCHEMA_VERSION => {}
        Some(other) => {
            return Err(refuse(
                K::UnsupportedSchemaVersion,
                format!("SchemaVersion must be \"{SCHEMA_VERSION}\", got {other}"),
            ));
        }
        None => {
            return Err(refuse(
                K::UnsupportedSchemaVersion,
                format!("SchemaVersion is required (\"{SCHEMA_VERSION}\")"),
            ));
        }
    }
    let actions = match doc.get("Actions") {
        None | Some(Value::Null) => ActionList::Keep,
        Some(Value::Array(items)) => {
            if items.len() > MAX_ACTIONS {
                return Err(refuse(
                    K::TooManyActions,
                    format!(
                        "Actions has {} actions; the most is {MAX_ACTIONS}",
                        items.len()
                    ),
                ));
            }
            let actions = items
                .iter()
                .enumerate()
                .map(|(i, a)| parse_action(i, a))
                .collect::<Result<_, _>>()?;
            ActionList::Replace(actions)
        }
        Some(_) => {
            return Err(refuse(
                K::MalformedResponse,
                "Actions must be a list (or null)",
            ));
        }
    };
    let transaction_attributes = match doc.get("TransactionAttributes") {
        None | Some(Value::Null) => None,
        Some(v) => Some(attributes(v)?),
    };
    Ok(FunctionResponse {
        actions,
        transaction_attributes,
    })
}

fn attributes(v: &Value) -> Result<BTreeMap<String, String>, InvalidResponse> {
    use InvalidResponseKind as K;
    let Value::Object(map) = v else {
        return Err(refuse(
            K::InvalidTransactionAttributes,
            "TransactionAttributes must be an object of strings",
        ));
    };
    if map.len() > MAX_TRANSACTION_ATTRIBUTES {
        return Err(refuse(
            K::InvalidTransactionAttributes,
            format!(
                "TransactionAttributes has {} pairs; the most is {MAX_TRANSACTION_ATTRIBUTES}",
                map.len()
            ),
        ));
    }
    let mut out = BTreeMap::new();
    let mut bytes = 0;
    for (k, v) in map {
        let Value::String(s) = v else {
            return Err(refuse(
                K::InvalidTransactionAttributes,
                format!("TransactionAttributes.{k} must be a string"),
            ));
        };
        bytes += k.len() + s.len();
        out.insert(k.clone(), s.clone());
    }
    if bytes > MAX_TRANSACTION_ATTRIBUTES_BYTES {
        return Err(refuse(
            K::InvalidTransactionAttributes,
            format!(
                "TransactionAttributes hold {bytes} bytes; the most is {MAX_TRANSACTION_ATTRIBUTES_BYTES}"
            ),
        ));
    }
    Ok(out)
}

/// The value at a dotted path under `params`, if present and not null.
fn lookup<'a>(params: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut v = params.get(parts.next()?)?;
    for p in parts {
        v = v.as_object()?.get(p)?;
    }
    (!v.is_null()).then_some(v)
}

fn parse_action(i: usize, v: &Value) -> Result<Action, InvalidResponse> {
    use InvalidResponseKind as K;
    let Value::Object(obj) = v else {
        return Err(refuse(
            K::MalformedResponse,
            format!("Actions[{i}] must be an object with Type and Parameters"),
        ));
    };
    let type_name = match obj.get("Type") {
        Some(Value::String(t)) => t.as_str(),
        Some(_) => {
            return Err(refuse(
                K::InvalidActionType,
                format!("Actions[{i}].Type must be a string"),
            ));
        }
        None => {
            return Err(refuse(
                K::MissingRequiredParameter,
                format!("Actions[{i}].Type is required"),
            ));
        }
    };
    let Some(needed) = required(type_name) else {
        return Err(refuse(
            K::InvalidActionType,
            format!("Actions[{i}].Type {type_name:?} is not an action type"),
        ));
    };
    let params = match obj.get("Parameters") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(p)) => p.clone(),
        Some(_) => {
            return Err(refuse(
                K::InvalidActionParameter,
                format!("Actions[{i}].Parameters must be an object"),
            ));
        }
    };
    if let Some(missing) = needed.iter().find(|p| lookup(&params, p).is_none()) {
        return Err(refuse(
            K::MissingRequiredParameter,
            format!("Actions[{i}].Parameters.{missing} is required for {type_name}"),
        ));
    }
    let parameters = Value::Object(params);
    let kind = typed(type_name, parameters.clone()).map_err(|e| {
        refuse(
            K::InvalidActionParameter,
            format!("Actions[{i}].Parameters ({type_name}): {e}"),
        )
    })?;
    kind.check().map_err(|(name, why)| {
        refuse(
            K::InvalidActionParameter,
            format!("Actions[{i}].Parameters.{name}: {why}"),
        )
    })?;
    Ok(Action { kind, parameters })
}
