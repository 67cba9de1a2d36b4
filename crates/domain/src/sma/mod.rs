//! Programmable calls (issue 13): SIP media applications, SIP rules, the function registry,
//! and the event/action contract of AWS's PSTN audio service.
//!
//! - this file: the resources of the `chime-sdk-voice` service model (`SipMediaApplication`,
//!   `SipRule`) with the checks the model cannot express, and the operator's function
//!   registry entry ([`FunctionEndpoint`]: which HTTP endpoint runs a Lambda ARN);
//! - [`event`]: the invocation event a function receives, exactly as AWS sends it;
//! - [`action`]: a function's answer, parsed and validated (at most 10 actions, known
//!   types, required parameters, transaction-attribute limits);
//! - [`flow`]: one transaction's call flow, sans-IO: events out, answers in, the actions
//!   run against the legs the driver reports on.
//!
//! All pure: no I/O, no clock (callers pass timestamps in).

pub mod action;
pub mod event;
pub mod flow;
mod params;
mod response;

use serde::{Deserialize, Serialize};

use crate::DomainError;

/// A SIP media application (service model shape `SipMediaApplication`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SipMediaApplication {
    pub sip_media_application_id: String,
    pub aws_region: String,
    pub name: String,
    pub endpoints: Vec<SipMediaApplicationEndpoint>,
    pub created_timestamp: String,
    pub updated_timestamp: String,
    pub sip_media_application_arn: String,
}

/// Where the application's function is (shape `SipMediaApplicationEndpoint`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SipMediaApplicationEndpoint {
    pub lambda_arn: String,
}

/// `arn:aws:chime:<region>:000000000000:sma/<id>`.
pub fn sip_media_application_arn(region: &str, id: &str) -> String {
    format!("arn:aws:chime:{region}:000000000000:sma/{id}")
}

impl SipMediaApplication {
    /// The function every event of this application goes to (the model allows exactly one
    /// endpoint).
    pub fn lambda_arn(&self) -> Option<&str> {
        self.endpoints.first().map(|e| e.lambda_arn.as_str())
    }

    /// What the model does not check: the region's form, and that the function lives in
    /// the application's region (AWS refuses a function of another region).
    pub fn validate(&self) -> Result<(), DomainError> {
        validate_region("AwsRegion", &self.aws_region)?;
        for (i, e) in self.endpoints.iter().enumerate() {
            let field = format!("Endpoints[{i}].LambdaArn");
            let arn = LambdaArn::parse(&field, &e.lambda_arn)?;
            if arn.region != self.aws_region {
                return Err(DomainError::invalid(
                    field,
                    format!(
                        "the function is in region {}, the application in {}; they must match",
                        arn.region, self.aws_region
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// An AWS region name: `us-east-1`, `eu-central-2`, `us-gov-west-1`.
pub fn validate_region(field: &str, region: &str) -> Result<(), DomainError> {
    if is_region(region) {
        Ok(())
    } else {
        Err(DomainError::invalid(
            field,
            format!("{region:?} is not an AWS region name (e.g. us-east-1)"),
        ))
    }
}

fn is_region(r: &str) -> bool {
    let parts: Vec<&str> = r.split('-').collect();
    let lower = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase());
    let (first, rest) = match parts.as_slice() {
        [first, rest @ ..] => (first, rest),
        [] => return false,
    };
    let Some((number, middle)) = rest.split_last() else {
        return false;
    };
    first.len() == 2
        && lower(first)
        && !number.is_empty()
        && number.bytes().all(|b| b.is_ascii_digit())
        && (1..=2).contains(&middle.len())
        && middle.iter().all(|m| lower(m))
}

/// The parts of a Lambda function ARN
/// (`arn:aws:lambda:us-east-1:123456789012:function:name[:qualifier]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LambdaArn<'a> {
    pub partition: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    pub function_name: &'a str,
    /// A version or alias (`$LATEST`, `prod`, `7`).
    pub qualifier: Option<&'a str>,
}

impl<'a> LambdaArn<'a> {
    /// Parses `arn`, refusing (naming `field`) anything but a Lambda function ARN.
    pub fn parse(field: &str, arn: &'a str) -> Result<Self, DomainError> {
        let bad = |why: &str| {
            DomainError::invalid(
                field,
                format!(
                    "{arn:?} is not a Lambda function ARN \
                     (arn:aws:lambda:REGION:ACCOUNT:function:NAME): {why}"
                ),
            )
        };
        let parts: Vec<&str> = arn.split(':').collect();
        if parts.len() < 7 || parts.len() > 8 {
            return Err(bad("wrong number of ':'-separated parts"));
        }
        let name_ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 140
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if parts[0] != "arn" {
            return Err(bad("it must start with arn:"));
        }
        if !parts[1].starts_with("aws") {
            return Err(bad("the partition must be aws, aws-cn or aws-us-gov"));
        }
        if parts[2] != "lambda" {
            return Err(bad("the service must be lambda"));
        }
        if !is_region(parts[3]) {
            return Err(bad("the region is not a region name"));
        }
        if parts[4].len() != 12 || !parts[4].bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("the account must be 12 digits"));
        }
        if parts[5] != "function" {
            return Err(bad("the resource type must be function"));
        }
        if !name_ok(parts[6]) {
            return Err(bad("the function name must be letters, digits, '-' or '_'"));
        }
        let qualifier = parts.get(7).copied();
        if let Some(q) = qualifier
            && q != "$LATEST"
            && !name_ok(q)
        {
            return Err(bad("the qualifier must be $LATEST, a version or an alias"));
        }
        Ok(LambdaArn {
            partition: parts[1],
            region: parts[3],
            account: parts[4],
            function_name: parts[6],
            qualifier,
        })
    }
}

/// What starts a SIP rule (shape `SipRuleTriggerType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SipRuleTriggerType {
    /// A call to a phone number of the inventory (not assigned to a voice connector).
    ToPhoneNumber,
    /// A call whose Request-URI host is one of our voice connectors' outbound host names.
    RequestUriHostname,
}

impl SipRuleTriggerType {
    pub fn as_str(self) -> &'static str {
        match self {
            SipRuleTriggerType::ToPhoneNumber => "ToPhoneNumber",
            SipRuleTriggerType::RequestUriHostname => "RequestUriHostname",
        }
    }
}

/// One application a rule may start (shape `SipRuleTargetApplication`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SipRuleTargetApplication {
    pub sip_media_application_id: String,
    /// 1 is tried first.
    pub priority: u32,
    pub aws_region: String,
}

/// A SIP rule (shape `SipRule`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SipRule {
    pub sip_rule_id: String,
    pub name: String,
    pub disabled: bool,
    pub trigger_type: SipRuleTriggerType,
    /// An E.164 number, or a host name (kept in lowercase).
    pub trigger_value: String,
    #[serde(default)]
    pub target_applications: Vec<SipRuleTargetApplication>,
    pub created_timestamp: String,
    pub updated_timestamp: String,
}

/// Most target applications in one rule (the model's list maximum).
pub const MAX_TARGET_APPLICATIONS: usize = 25;

impl SipRule {
    /// Checks what the model does not: the trigger value's form for its type, and the
    /// targets (region names, no priority or application given twice). Lowercases a host.
    pub fn validate(&mut self) -> Result<(), DomainError> {
        match self.trigger_type {
            SipRuleTriggerType::ToPhoneNumber => {
                crate::voice_connector::validate_e164("TriggerValue", &self.trigger_value)?;
            }
            SipRuleTriggerType::RequestUriHostname => {
                self.trigger_value = self.trigger_value.to_ascii_lowercase();
                if !crate::voice_connector::is_host(&self.trigger_value)
                    || self.trigger_value.parse::<std::net::IpAddr>().is_ok()
                {
                    return Err(DomainError::invalid(
                        "TriggerValue",
                        format!("{:?} is not a host name", self.trigger_value),
                    ));
                }
            }
        }
        Self::validate_targets(&self.target_applications)
    }

    /// Region names, no priority or application listed twice.
    pub fn validate_targets(targets: &[SipRuleTargetApplication]) -> Result<(), DomainError> {
        for (i, t) in targets.iter().enumerate() {
            validate_region(&format!("TargetApplications[{i}].AwsRegion"), &t.aws_region)?;
            if let Some(j) = targets[..i].iter().position(|o| o.priority == t.priority) {
                return Err(DomainError::invalid(
                    format!("TargetApplications[{i}].Priority"),
                    format!(
                        "priority {} is already given to TargetApplications[{j}]",
                        t.priority
                    ),
                ));
            }
            if targets[..i]
                .iter()
                .any(|o| o.sip_media_application_id == t.sip_media_application_id)
            {
                return Err(DomainError::invalid(
                    format!("TargetApplications[{i}].SipMediaApplicationId"),
                    format!("{} is listed twice", t.sip_media_application_id),
                ));
            }
        }
        Ok(())
    }

    /// The targets in the order a call tries them: lowest Priority first.
    pub fn targets_in_order(&self) -> Vec<&SipRuleTargetApplication> {
        let mut t: Vec<&SipRuleTargetApplication> = self.target_applications.iter().collect();
        t.sort_by_key(|t| t.priority);
        t
    }
}

/// How the server reaches a registered function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FunctionStyle {
    /// POST the event JSON to the URL; the response body is the actions JSON.
    #[default]
    Webhook,
    /// The Lambda Invoke API: `POST URL/2015-03-31/functions/<name>/invocations`, so a
    /// Lambda emulator runs an unmodified function.
    Invoke,
}

impl FunctionStyle {
    pub fn as_str(self) -> &'static str {
        match self {
            FunctionStyle::Webhook => "webhook",
            FunctionStyle::Invoke => "invoke",
        }
    }
}

impl std::str::FromStr for FunctionStyle {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, DomainError> {
        match s.to_ascii_lowercase().as_str() {
            "webhook" => Ok(FunctionStyle::Webhook),
            "invoke" => Ok(FunctionStyle::Invoke),
            _ => Err(DomainError::invalid(
                "style",
                format!("{s:?} is not a style; use webhook or invoke"),
            )),
        }
    }
}

/// One entry of the function registry: the operator's mapping of a Lambda ARN to the HTTP
/// endpoint that runs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FunctionEndpoint {
    pub lambda_arn: String,
    pub url: String,
    pub style: FunctionStyle,
}

impl FunctionEndpoint {
    /// Checks the ARN and the URL (`http://` or `https://host[:port][/path]`; no
    /// credentials in it, since the registry is listed in the clear).
    pub fn validate(&self) -> Result<(), DomainError> {
        LambdaArn::parse("arn", &self.lambda_arn)?;
        let url = &self.url;
        let bad = |why: &str| DomainError::invalid("url", format!("{url:?}: {why}"));
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"))
            .ok_or_else(|| bad("must start with http:// or https://"))?;
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        if authority.contains('@') {
            // Said without the URL: it holds a password.
            return Err(DomainError::invalid(
                "url",
                "must not carry credentials (user:password@)",
            ));
        }
        let host = match authority.rsplit_once(':') {
            Some((h, port)) if !h.ends_with(']') || authority.starts_with('[') => {
                if !port.is_empty() && port.parse::<u16>().is_err() {
                    return Err(bad("the port must be 1 to 65535"));
                }
                h
            }
            _ => authority,
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || !crate::voice_connector::is_host(host) {
            return Err(bad("no valid host"));
        }
        Ok(())
    }

    /// The function's name, from its ARN.
    pub fn function_name(&self) -> Option<&str> {
        LambdaArn::parse("arn", &self.lambda_arn)
            .ok()
            .map(|a| a.function_name)
    }

    /// The path of a Lambda Invoke call for this function, relative to the URL:
    /// `2015-03-31/functions/<name>/invocations`, with `?Qualifier=` for a version or alias.
    pub fn invoke_path(&self) -> Option<String> {
        let arn = LambdaArn::parse("arn", &self.lambda_arn).ok()?;
        let mut path = format!("2015-03-31/functions/{}/invocations", arn.function_name);
        if let Some(q) = arn.qualifier {
            // `$` is the only character of a qualifier that needs escaping in a query.
            path.push_str("?Qualifier=");
            path.push_str(&q.replace('$', "%24"));
        }
        Some(path)
    }
}

#[cfg(test)]
mod tests;
