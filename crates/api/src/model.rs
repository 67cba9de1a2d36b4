//! The service models (botocore's `chime-sdk-voice` 2022-08-03 and `chime-sdk-meetings`
//! 2021-07-15, reduced to the operations served here by `scripts/extract-api-model.py`) drive
//! routing, input assembly and validation, so paths, member names, required members, lengths,
//! ranges, enums and patterns are exactly the contract boto3 and the aws CLI follow.

use std::collections::{BTreeMap, HashMap};

use fancy_regex::Regex;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::ApiError;

/// Which AWS service an operation belongs to (error names differ between them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    Voice,
    Meetings,
}

#[derive(Debug, Deserialize)]
struct RawModel {
    operations: BTreeMap<String, RawOperation>,
    shapes: HashMap<String, Shape>,
}

#[derive(Debug, Deserialize)]
struct RawOperation {
    name: String,
    http: Http,
    input: Option<ShapeRef>,
}

#[derive(Debug, Deserialize)]
struct Http {
    method: String,
    #[serde(rename = "requestUri")]
    request_uri: String,
    #[serde(rename = "responseCode")]
    response_code: Option<u16>,
}

#[derive(Debug, Deserialize)]
struct ShapeRef {
    shape: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Shape {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    required: Vec<String>,
    #[serde(default)]
    members: BTreeMap<String, Member>,
    member: Option<ShapeRef>,
    #[serde(rename = "enum")]
    enumeration: Option<Vec<String>>,
    min: Option<f64>,
    max: Option<f64>,
    pattern: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Member {
    shape: String,
    location: Option<String>,
    #[serde(rename = "locationName")]
    location_name: Option<String>,
}

#[derive(Debug)]
enum Segment {
    Literal(String),
    Label(String),
}

/// One routable operation.
#[derive(Debug)]
pub struct Operation {
    pub name: String,
    pub service: Service,
    pub method: String,
    pub success_status: u16,
    route: Route,
    input: Option<String>,
}

/// A request URI template from a model's `http.requestUri`: path segments (literals and
/// `{labels}`) and the fixed query pairs some operations are told apart by.
#[derive(Debug)]
pub(crate) struct Route {
    segments: Vec<Segment>,
    query: Vec<(String, String)>,
}

impl Route {
    pub(crate) fn parse(request_uri: &str) -> Self {
        let (path, query) = request_uri.split_once('?').unwrap_or((request_uri, ""));
        let segments = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(
                |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(label) => Segment::Label(label.trim_end_matches('+').to_string()),
                    None => Segment::Literal(s.to_string()),
                },
            )
            .collect();
        let query = query
            .split('&')
            .filter(|q| !q.is_empty())
            .map(|q| {
                let (k, v) = q.split_once('=').unwrap_or((q, ""));
                (k.to_string(), v.to_string())
            })
            .collect();
        Route { segments, query }
    }

    /// The decoded path labels when the path parts and query match this template.
    pub(crate) fn matches(
        &self,
        parts: &[&str],
        query: &[(String, String)],
    ) -> Option<HashMap<String, String>> {
        if self.segments.len() != parts.len() {
            return None;
        }
        for (k, v) in &self.query {
            if !query.iter().any(|(qk, qv)| qk == k && qv == v) {
                return None;
            }
        }
        let mut labels = HashMap::new();
        for (seg, part) in self.segments.iter().zip(parts) {
            match seg {
                Segment::Literal(l) if l == part => {}
                Segment::Literal(_) => return None,
                Segment::Label(name) => {
                    let decoded = percent_encoding::percent_decode_str(part)
                        .decode_utf8()
                        .ok()?;
                    labels.insert(name.clone(), decoded.into_owned());
                }
            }
        }
        Some(labels)
    }

    /// How many fixed query pairs tell this operation apart.
    pub(crate) fn query_len(&self) -> usize {
        self.query.len()
    }

    /// True when the path alone (any query, any label values) fits this template.
    fn fits_path(&self, parts: &[&str]) -> bool {
        self.segments.len() == parts.len()
            && self.segments.iter().zip(parts).all(|(s, p)| match s {
                Segment::Literal(l) => l == p,
                Segment::Label(_) => true,
            })
    }
}

/// The parts of a raw path between slashes.
pub(crate) fn path_parts(raw_path: &str) -> Vec<&str> {
    raw_path.split('/').filter(|s| !s.is_empty()).collect()
}

/// Both services' operations and shapes, with patterns compiled once.
pub struct Model {
    ops: Vec<Operation>,
    shapes: HashMap<(Service, String), Shape>,
    patterns: HashMap<String, Regex>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Model({} operations)", self.ops.len())
    }
}

/// A request matched to an operation, with its path labels decoded.
pub struct Matched<'m> {
    pub op: &'m Operation,
    pub labels: HashMap<String, String>,
}

impl Model {
    /// Loads the embedded models. They are part of the binary, so failing here is a build
    /// defect that the unit tests catch, not a runtime condition.
    pub fn load() -> Self {
        let mut ops = Vec::new();
        let mut shapes = HashMap::new();
        let mut patterns = HashMap::new();
        for (service, text) in [
            (Service::Voice, include_str!("../model/voice.json")),
            (Service::Meetings, include_str!("../model/meetings.json")),
        ] {
            let raw: RawModel =
                serde_json::from_str(text).expect("embedded service model is valid JSON");
            for op in raw.operations.into_values() {
                ops.push(Operation {
                    name: op.name,
                    service,
                    method: op.http.method,
                    success_status: op.http.response_code.unwrap_or(200),
                    route: Route::parse(&op.http.request_uri),
                    input: op.input.map(|r| r.shape),
                });
            }
            for (name, shape) in raw.shapes {
                if let Some(p) = &shape.pattern {
                    // Patterns must match the whole value (as AWS's validators apply them).
                    let re =
                        Regex::new(&format!("^(?:{p})$")).expect("service model pattern compiles");
                    patterns.insert(p.clone(), re);
                }
                shapes.insert((service, name), shape);
            }
        }
        // Operations with query discriminators (`?operation=…`) are tried first.
        ops.sort_by_key(|o| std::cmp::Reverse(o.route.query_len()));
        Model {
            ops,
            shapes,
            patterns,
        }
    }

    /// Finds the operation for a method, a raw (percent-encoded) path and the decoded query.
    pub fn route(
        &self,
        method: &str,
        raw_path: &str,
        query: &[(String, String)],
    ) -> Option<Matched<'_>> {
        self.find(None, method, raw_path, query)
    }

    /// [`route`](Self::route) among one service's operations only (where both services
    /// model the same route, as for tags).
    pub fn route_in(
        &self,
        service: Service,
        method: &str,
        raw_path: &str,
        query: &[(String, String)],
    ) -> Option<Matched<'_>> {
        self.find(Some(service), method, raw_path, query)
    }

    fn find(
        &self,
        service: Option<Service>,
        method: &str,
        raw_path: &str,
        query: &[(String, String)],
    ) -> Option<Matched<'_>> {
        let parts = path_parts(raw_path);
        self.ops
            .iter()
            .filter(|op| op.method == method && service.is_none_or(|s| op.service == s))
            .find_map(|op| {
                op.route
                    .matches(&parts, query)
                    .map(|labels| Matched { op, labels })
            })
    }

    /// The values of an enum shape (e.g. `VoiceConnectorAwsRegion`).
    pub fn enum_values(&self, service: Service, shape: &str) -> Option<Vec<String>> {
        self.shapes
            .get(&(service, shape.to_string()))?
            .enumeration
            .clone()
    }

    /// True when `name` is one of the operations served here.
    pub fn serves(&self, name: &str) -> bool {
        self.ops.iter().any(|op| op.name == name)
    }

    /// True when some operation serves this path with another method (405 rather than 404).
    pub fn path_known(&self, raw_path: &str) -> bool {
        let parts = path_parts(raw_path);
        self.ops.iter().any(|op| op.route.fits_path(&parts))
    }

    /// Builds the operation's input document from path labels, query string, headers and the
    /// JSON body, then validates it against the input shape.
    pub fn assemble_input(
        &self,
        m: &Matched<'_>,
        query: &[(String, String)],
        headers: &axum::http::HeaderMap,
        body: &[u8],
    ) -> Result<Value, ApiError> {
        let Some(input_name) = &m.op.input else {
            return Ok(Value::Object(Map::new()));
        };
        let service = m.op.service;
        let shape = self.shape(service, input_name);
        let mut doc = if body.iter().all(|b| b.is_ascii_whitespace()) {
            Map::new()
        } else {
            match serde_json::from_slice::<Value>(body) {
                Ok(Value::Object(map)) => map,
                Ok(other) => {
                    return Err(ApiError::bad_request(format!(
                        "the request body must be a JSON object, got {}",
                        json_kind(&other)
                    )));
                }
                Err(e) => {
                    return Err(ApiError::bad_request(format!(
                        "the request body is not valid JSON: {e}"
                    )));
                }
            }
        };
        for (name, member) in &shape.members {
            // Members bound to the URI, query or headers never come from the body.
            let Some(loc) = member.location.as_deref() else {
                continue;
            };
            doc.remove(name);
            let key = member.location_name.as_deref().unwrap_or(name);
            let raw = match loc {
                "uri" => m.labels.get(key).cloned(),
                "querystring" => query.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()),
                "header" => headers
                    .get(key)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string),
                _ => None,
            };
            if let Some(raw) = raw {
                let target = self.shape(service, &member.shape);
                let value = match target.kind.as_str() {
                    "integer" | "long" => match raw.parse::<i64>() {
                        Ok(n) => Value::from(n),
                        Err(_) => {
                            return Err(ApiError::bad_request(format!(
                                "{name} must be an integer, got {raw:?}"
                            )));
                        }
                    },
                    "boolean" => match raw.as_str() {
                        "true" => Value::Bool(true),
                        "false" => Value::Bool(false),
                        _ => {
                            return Err(ApiError::bad_request(format!(
                                "{name} must be true or false, got {raw:?}"
                            )));
                        }
                    },
                    _ => Value::String(raw),
                };
                doc.insert(name.clone(), value);
            }
        }
        let doc = Value::Object(doc);
        self.validate(service, input_name, &doc, "")?;
        Ok(doc)
    }

    fn shape(&self, service: Service, name: &str) -> &Shape {
        self.shapes
            .get(&(service, name.to_string()))
            .expect("service model references only shapes it defines")
    }

    /// Checks `value` against shape `name`; `path` names the value in error messages
    /// (`Termination.CidrAllowedList[0]`).
    fn validate(
        &self,
        service: Service,
        name: &str,
        value: &Value,
        path: &str,
    ) -> Result<(), ApiError> {
        let shape = self.shape(service, name);
        let field = if path.is_empty() { "the request" } else { path };
        let wrong_type = |want: &str| {
            ApiError::bad_request(format!("{field} must be {want}, got {}", json_kind(value)))
        };
        match shape.kind.as_str() {
            "structure" => {
                let Value::Object(map) = value else {
                    return Err(wrong_type("an object"));
                };
                for req in &shape.required {
                    if map.get(req).is_none_or(Value::is_null) {
                        let full = join(path, req);
                        return Err(ApiError::bad_request(format!("{full} is required")));
                    }
                }
                for (mname, member) in &shape.members {
                    if let Some(v) = map.get(mname).filter(|v| !v.is_null()) {
                        self.validate(service, &member.shape, v, &join(path, mname))?;
                    }
                }
            }
            "list" => {
                let Value::Array(items) = value else {
                    return Err(wrong_type("a list"));
                };
                self.check_len(shape, items.len(), field, "entries")?;
                if let Some(m) = &shape.member {
                    for (i, item) in items.iter().enumerate() {
                        self.validate(service, &m.shape, item, &format!("{field}[{i}]"))?;
                    }
                }
            }
            "map" if !value.is_object() => {
                return Err(wrong_type("an object"));
            }
            "string" => {
                let Value::String(s) = value else {
                    return Err(wrong_type("a string"));
                };
                self.check_len(shape, s.chars().count(), field, "characters")?;
                if let Some(allowed) = &shape.enumeration
                    && !allowed.iter().any(|a| a == s)
                {
                    return Err(ApiError::bad_request(format!(
                        "{field} must be one of {}, got {s:?}",
                        allowed.join(", ")
                    )));
                }
                if let Some(p) = &shape.pattern {
                    let ok = self
                        .patterns
                        .get(p)
                        .is_some_and(|re| re.is_match(s).unwrap_or(false));
                    if !ok {
                        return Err(ApiError::bad_request(format!(
                            "{field} {s:?} does not match the pattern {p}"
                        )));
                    }
                }
            }
            "integer" | "long" => {
                let Some(n) = value.as_i64() else {
                    return Err(wrong_type("an integer"));
                };
                if let Some(min) = shape.min
                    && (n as f64) < min
                {
                    return Err(ApiError::bad_request(format!(
                        "{field} is {n}; the minimum is {min}"
                    )));
                }
                if let Some(max) = shape.max
                    && (n as f64) > max
                {
                    return Err(ApiError::bad_request(format!(
                        "{field} is {n}; the maximum is {max}"
                    )));
                }
            }
            "boolean" if !value.is_boolean() => {
                return Err(wrong_type("true or false"));
            }
            "timestamp" if !(value.is_string() || value.is_number()) => {
                return Err(wrong_type("a timestamp"));
            }
            _ => {}
        }
        Ok(())
    }

    fn check_len(
        &self,
        shape: &Shape,
        len: usize,
        field: &str,
        unit: &str,
    ) -> Result<(), ApiError> {
        if let Some(min) = shape.min
            && (len as f64) < min
        {
            return Err(ApiError::bad_request(format!(
                "{field} has {len} {unit}; the minimum is {min}"
            )));
        }
        if let Some(max) = shape.max
            && (len as f64) > max
        {
            return Err(ApiError::bad_request(format!(
                "{field} has {len} {unit}; the maximum is {max}"
            )));
        }
        Ok(())
    }
}

fn join(path: &str, member: &str) -> String {
    if path.is_empty() {
        member.to_string()
    } else {
        format!("{path}.{member}")
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn routes_follow_the_model() {
        let m = Model::load();
        let r = m.route("POST", "/voice-connectors", &[]).expect("create");
        assert_eq!(r.op.name, "CreateVoiceConnector");
        assert_eq!(r.op.success_status, 201);
        let r = m
            .route(
                "POST",
                "/voice-connectors/abc",
                &q(&[("operation", "associate-phone-numbers")]),
            )
            .expect("assoc");
        assert_eq!(r.op.name, "AssociatePhoneNumbersWithVoiceConnector");
        assert_eq!(r.labels["voiceConnectorId"], "abc");
        let r = m
            .route(
                "POST",
                "/meetings/x/attendees",
                &q(&[("operation", "batch-create")]),
            )
            .expect("batch");
        assert_eq!(r.op.name, "BatchCreateAttendee");
        let r = m
            .route("POST", "/meetings/x/attendees", &[])
            .expect("create attendee");
        assert_eq!(r.op.name, "CreateAttendee");
        let r = m
            .route("GET", "/phone-numbers/%2B12065550100", &[])
            .expect("get number");
        assert_eq!(r.labels["phoneNumberId"], "+12065550100");
        assert!(m.route("PATCH", "/voice-connectors", &[]).is_none());
        assert!(m.path_known("/voice-connectors"));
        assert!(m.route("GET", "/nope", &[]).is_none());
    }

    #[test]
    fn validation_names_the_field() {
        let m = Model::load();
        let r = m
            .route("PUT", "/voice-connectors/abc/origination", &[])
            .expect("route");
        let h = axum::http::HeaderMap::new();
        let body = br#"{"Origination":{"Routes":[{"Host":"h","Port":5060,"Protocol":"UDP","Priority":0,"Weight":1}]}}"#;
        let err = m.assemble_input(&r, &[], &h, body).expect_err("priority 0");
        assert!(
            err.to_string()
                .contains("Origination.Routes[0].Priority is 0; the minimum is 1"),
            "{err}"
        );
        let err = m.assemble_input(&r, &[], &h, b"{").expect_err("bad json");
        assert!(err.to_string().contains("not valid JSON"), "{err}");
        let err = m.assemble_input(&r, &[], &h, b"{}").expect_err("missing");
        assert!(err.to_string().contains("Origination is required"), "{err}");
        let body = br#"{"Origination":{"Disabled":"yes"}}"#;
        let err = m.assemble_input(&r, &[], &h, body).expect_err("type");
        assert!(
            err.to_string()
                .contains("Origination.Disabled must be true or false, got a string"),
            "{err}"
        );
        let r = m.route("POST", "/voice-connectors", &[]).expect("route");
        let err = m
            .assemble_input(
                &r,
                &[],
                &h,
                br#"{"Name":"bad/name","RequireEncryption":true}"#,
            )
            .expect_err("pattern");
        assert!(
            err.to_string().contains("Name \"bad/name\" does not match"),
            "{err}"
        );
        let ok = m
            .assemble_input(
                &r,
                &[],
                &h,
                br#"{"Name":"ok name","RequireEncryption":true}"#,
            )
            .expect("valid");
        assert_eq!(ok["Name"], "ok name");
        let r = m.route("GET", "/voice-connectors", &[]).expect("list");
        let err = m
            .assemble_input(&r, &q(&[("max-results", "500")]), &h, b"")
            .expect_err("range");
        assert!(
            err.to_string()
                .contains("MaxResults is 500; the maximum is 100"),
            "{err}"
        );
    }
}
