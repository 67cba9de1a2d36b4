//! A voice connector's streaming configuration (Put, Get and
//! DeleteVoiceConnectorStreamingConfiguration). On AWS it sends each call's audio to Kinesis
//! Video Streams; here it turns on the WebSocket stream the operator points at with
//! `voice-connector admin streaming set` (the server's `streaming` module reads it for every
//! call). The model checks the shapes (DataRetentionInHours at least 0, Disabled present,
//! one to three notification targets from EventBridge, SNS and SQS); the rules below are the
//! ones the shapes cannot say.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use store::SettingKind;

use super::voice::{delete_setting, get_setting, load};
use super::{Ctx, member, string};
use crate::ApiError;

/// The longest retention Kinesis Video Streams accepts (ten years), and ours.
pub const MAX_RETENTION_HOURS: i64 = 87_600;

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Target {
    #[serde(skip_serializing_if = "Option::is_none")]
    notification_target: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
struct MediaInsights {
    #[serde(skip_serializing_if = "Option::is_none")]
    disabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    configuration_arn: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
struct StreamingConfiguration {
    data_retention_in_hours: i64,
    disabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    streaming_notification_targets: Option<Vec<Target>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    media_insights_configuration: Option<MediaInsights>,
}

impl StreamingConfiguration {
    /// What the model cannot check, with the field named.
    fn validate(&self) -> Result<(), ApiError> {
        const FIELD: &str = "StreamingConfiguration";
        if self.data_retention_in_hours > MAX_RETENTION_HOURS {
            return Err(ApiError::bad_request(format!(
                "{FIELD}.DataRetentionInHours is {}; at most {MAX_RETENTION_HOURS} (ten years)",
                self.data_retention_in_hours
            )));
        }
        let targets = self
            .streaming_notification_targets
            .as_deref()
            .unwrap_or(&[]);
        let mut seen = Vec::new();
        for (i, t) in targets.iter().enumerate() {
            let Some(kind) = &t.notification_target else {
                return Err(ApiError::bad_request(format!(
                    "{FIELD}.StreamingNotificationTargets[{i}].NotificationTarget is required"
                )));
            };
            if seen.contains(&kind) {
                return Err(ApiError::bad_request(format!(
                    "{FIELD}.StreamingNotificationTargets lists {kind} twice"
                )));
            }
            seen.push(kind);
        }
        if let Some(mi) = &self.media_insights_configuration {
            let on = mi.disabled != Some(true);
            match &mi.configuration_arn {
                Some(arn) if !arn.contains(":media-insights-pipeline-configuration/") => {
                    return Err(ApiError::bad_request(format!(
                        "{FIELD}.MediaInsightsConfiguration.ConfigurationArn {arn} is not a media insights pipeline configuration ARN (arn:aws:chime:REGION:ACCOUNT:media-insights-pipeline-configuration/NAME)"
                    )));
                }
                None if on => {
                    return Err(ApiError::bad_request(format!(
                        "{FIELD}.MediaInsightsConfiguration.ConfigurationArn is required unless Disabled is true"
                    )));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

pub(super) async fn put(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    let connector = load(ctx, &input).await?;
    let config: StreamingConfiguration = member(&input, "StreamingConfiguration")?;
    config.validate()?;
    let doc = serde_json::to_value(&config).map_err(|e| ApiError::Internal(e.to_string()))?;
    ctx.state
        .repo
        .put_setting(&connector.voice_connector_id, SettingKind::Streaming, &doc)
        .await?;
    Ok(json!({ "StreamingConfiguration": doc }))
}

pub(super) async fn get(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    match get_setting(ctx, &input, SettingKind::Streaming).await? {
        Some(doc) => Ok(json!({ "StreamingConfiguration": doc })),
        None => Err(ApiError::NotFound(format!(
            "voice connector {} has no streaming configuration; call PutVoiceConnectorStreamingConfiguration first",
            string(&input, "VoiceConnectorId")
        ))),
    }
}

pub(super) async fn delete(ctx: &Ctx<'_>, input: Value) -> Result<Value, ApiError> {
    delete_setting(ctx, &input, SettingKind::Streaming, "streaming").await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(doc: Value) -> StreamingConfiguration {
        serde_json::from_value(doc).unwrap()
    }

    #[test]
    fn the_rules_beyond_the_model_name_the_field() {
        let ok = config(json!({"DataRetentionInHours": 0, "Disabled": false,
            "StreamingNotificationTargets": [{"NotificationTarget": "SQS"}, {"NotificationTarget": "SNS"}]}));
        assert!(ok.validate().is_ok());
        let cases = [
            (
                json!({"DataRetentionInHours": 87601, "Disabled": false}),
                "DataRetentionInHours",
            ),
            (
                json!({"DataRetentionInHours": 1, "Disabled": false,
                "StreamingNotificationTargets": [{}]}),
                "StreamingNotificationTargets[0].NotificationTarget",
            ),
            (
                json!({"DataRetentionInHours": 1, "Disabled": false,
                "StreamingNotificationTargets": [{"NotificationTarget": "SNS"}, {"NotificationTarget": "SNS"}]}),
                "lists SNS twice",
            ),
            (
                json!({"DataRetentionInHours": 1, "Disabled": false,
                "MediaInsightsConfiguration": {"Disabled": false}}),
                "ConfigurationArn is required",
            ),
            (
                json!({"DataRetentionInHours": 1, "Disabled": false,
                "MediaInsightsConfiguration": {"ConfigurationArn": "arn:aws:s3:::bucket"}}),
                "not a media insights",
            ),
        ];
        for (doc, want) in cases {
            let e = config(doc.clone()).validate().unwrap_err().to_string();
            assert!(e.contains(want), "{doc}: {e}");
        }
        let off = config(json!({"DataRetentionInHours": 1, "Disabled": true,
            "MediaInsightsConfiguration": {"Disabled": true}}));
        assert!(off.validate().is_ok());
    }
}
