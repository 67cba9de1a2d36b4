//! The resource checks, the registry entry, and events and answers taken from AWS's
//! documentation of the PSTN audio service.

use super::action::{ActionKind, ActionList, InvalidResponseKind, parse_response};
use super::event::*;
use super::*;

fn sma(region: &str, arn: &str) -> SipMediaApplication {
    SipMediaApplication {
        sip_media_application_id: "id".into(),
        aws_region: region.into(),
        name: "n".into(),
        endpoints: vec![SipMediaApplicationEndpoint {
            lambda_arn: arn.into(),
        }],
        created_timestamp: String::new(),
        updated_timestamp: String::new(),
        sip_media_application_arn: String::new(),
    }
}

#[test]
fn lambda_arns_and_regions() {
    let a = LambdaArn::parse(
        "f",
        "arn:aws:lambda:us-east-1:123456789012:function:pin-dial:prod",
    )
    .expect("valid");
    assert_eq!(
        (a.region, a.account, a.function_name, a.qualifier),
        ("us-east-1", "123456789012", "pin-dial", Some("prod"))
    );
    for bad in [
        "arn:aws:s3:us-east-1:123456789012:function:x",
        "arn:aws:lambda:us-east-1:12345:function:x",
        "arn:aws:lambda:useast:123456789012:function:x",
        "arn:aws:lambda:us-east-1:123456789012:layer:x",
        "arn:aws:lambda:us-east-1:123456789012:function:a/b",
        "not-an-arn",
    ] {
        let e = LambdaArn::parse("Endpoints[0].LambdaArn", bad).expect_err(bad);
        assert!(e.to_string().starts_with("Endpoints[0].LambdaArn: "), "{e}");
    }
    assert!(
        sma(
            "us-east-1",
            "arn:aws:lambda:us-east-1:123456789012:function:f"
        )
        .validate()
        .is_ok()
    );
    assert!(
        sma(
            "us-gov-west-1",
            "arn:aws-us-gov:lambda:us-gov-west-1:123456789012:function:f:$LATEST"
        )
        .validate()
        .is_ok()
    );
    let e = sma(
        "us-west-2",
        "arn:aws:lambda:us-east-1:123456789012:function:f",
    )
    .validate()
    .expect_err("region mismatch");
    assert!(e.to_string().contains("must match"), "{e}");
    let e = sma("Mars", "arn:aws:lambda:us-east-1:123456789012:function:f")
        .validate()
        .expect_err("bad region");
    assert!(e.to_string().starts_with("AwsRegion:"), "{e}");
}

fn rule(kind: SipRuleTriggerType, value: &str, prios: &[(u32, &str)]) -> SipRule {
    SipRule {
        sip_rule_id: "r".into(),
        name: "n".into(),
        disabled: false,
        trigger_type: kind,
        trigger_value: value.into(),
        target_applications: prios
            .iter()
            .map(|(p, id)| SipRuleTargetApplication {
                sip_media_application_id: (*id).into(),
                priority: *p,
                aws_region: "us-east-1".into(),
            })
            .collect(),
        created_timestamp: String::new(),
        updated_timestamp: String::new(),
    }
}

#[test]
fn rules_check_the_trigger_and_the_targets() {
    use SipRuleTriggerType::*;
    let mut r = rule(
        RequestUriHostname,
        "ABC.Voice.Example",
        &[(2, "b"), (1, "a")],
    );
    r.validate().expect("valid");
    assert_eq!(r.trigger_value, "abc.voice.example");
    let order: Vec<&str> = r
        .targets_in_order()
        .iter()
        .map(|t| t.sip_media_application_id.as_str())
        .collect();
    assert_eq!(order, ["a", "b"]);
    assert!(rule(ToPhoneNumber, "+12065550100", &[]).validate().is_ok());
    let e = rule(ToPhoneNumber, "2065550100", &[])
        .validate()
        .unwrap_err();
    assert!(e.to_string().starts_with("TriggerValue:"), "{e}");
    let e = rule(RequestUriHostname, "127.0.0.1", &[])
        .validate()
        .unwrap_err();
    assert!(e.to_string().starts_with("TriggerValue:"), "{e}");
    let e = rule(ToPhoneNumber, "+12065550100", &[(1, "a"), (1, "b")])
        .validate()
        .unwrap_err();
    assert!(
        e.to_string().starts_with("TargetApplications[1].Priority"),
        "{e}"
    );
    let e = rule(ToPhoneNumber, "+12065550100", &[(1, "a"), (2, "a")])
        .validate()
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("TargetApplications[1].SipMediaApplicationId"),
        "{e}"
    );
}

#[test]
fn registry_entries_check_url_and_arn() {
    let f = |url: &str| FunctionEndpoint {
        lambda_arn: "arn:aws:lambda:us-east-1:123456789012:function:ivr:$LATEST".into(),
        url: url.into(),
        style: FunctionStyle::Invoke,
    };
    for ok in [
        "http://127.0.0.1:9000",
        "http://localhost/hook?x=1",
        "http://[::1]:8080/",
        "https://fn.example.com/ivr",
        "https://127.0.0.1:8443",
    ] {
        f(ok).validate().unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    for bad in [
        "https://",
        "ftp://x",
        "http://user:pw@x/",
        "http://:80",
        "http://x:99999",
    ] {
        let e = f(bad).validate().expect_err(bad);
        assert!(e.to_string().starts_with("url:"), "{bad}: {e}");
    }
    assert_eq!(
        f("http://x").invoke_path().as_deref(),
        Some("2015-03-31/functions/ivr/invocations?Qualifier=%24LATEST")
    );
    assert_eq!(
        "INVOKE".parse::<FunctionStyle>().unwrap(),
        FunctionStyle::Invoke
    );
    assert!(
        "grpc"
            .parse::<FunctionStyle>()
            .unwrap_err()
            .to_string()
            .starts_with("style:")
    );
}

/// AWS's NEW_INBOUND_CALL example, field for field.
const NEW_INBOUND_CALL: &str = r#"{
    "SchemaVersion": "1.0",
    "Sequence": 1,
    "InvocationEventType": "NEW_INBOUND_CALL",
    "CallDetails": {
        "TransactionId": "transaction-id",
        "AwsAccountId": "aws-account-id",
        "AwsRegion": "us-east-1",
        "SipRuleId": "sip-rule-id",
        "SipMediaApplicationId": "sip-media-application-id",
        "Participants": [
            {
                "CallId": "call-id-1",
                "ParticipantTag": "LEG-A",
                "To": "+11234567890",
                "From": "+19876543210",
                "Direction": "Inbound",
                "StartTimeInMilliseconds": "159700958834234",
                "Status": "Connected"
            }
        ]
    }
}"#;

#[test]
fn events_round_trip_in_aws_shape() {
    let e: InvocationEvent = serde_json::from_str(NEW_INBOUND_CALL).expect("parses");
    assert_eq!(e.invocation_event_type, EventType::NewInboundCall);
    assert_eq!(
        e.call_details.participants[0].participant_tag,
        ParticipantTag::LegA
    );
    let back: serde_json::Value = serde_json::from_slice(&e.to_json()).unwrap();
    let want: serde_json::Value = serde_json::from_str(NEW_INBOUND_CALL).unwrap();
    assert_eq!(back, want, "nothing added, nothing lost");

    let details = CallDetails {
        transaction_id: "t".into(),
        aws_account_id: ACCOUNT_ID.into(),
        aws_region: "us-east-1".into(),
        sip_rule_id: None,
        sip_media_application_id: "s".into(),
        participants: vec![Participant::new(
            "c",
            ParticipantTag::LegB,
            "+1",
            "+2",
            Direction::Outbound,
            1_641_998_241_509,
        )],
        transaction_attributes: None,
    };
    let err = parse_response(b"{").unwrap_err();
    let ev = InvocationEvent::invalid_response(4, details, &err);
    let v: serde_json::Value = serde_json::from_slice(&ev.to_json()).unwrap();
    assert_eq!(v["InvocationEventType"], "INVALID_LAMBDA_RESPONSE");
    assert_eq!(v["ErrorType"], "MalformedResponse");
    assert_eq!(
        v["CallDetails"]["Participants"][0]["ParticipantTag"],
        "LEG-B"
    );
    assert_eq!(
        v["CallDetails"]["Participants"][0]["StartTimeInMilliseconds"],
        "1641998241509"
    );
    assert!(v["CallDetails"].get("SipRuleId").is_none());
}

/// AWS's PIN example answers: PlayAudioAndGetDigits (numbers as numbers), then
/// JoinChimeMeeting; PlayAudio and RecordAudio with numbers written as strings.
#[test]
fn documented_answers_parse() {
    let r = parse_response(
        br##"{"SchemaVersion": "1.0", "Actions": [{
            "Type": "PlayAudioAndGetDigits",
            "Parameters": {
                "CallId": "call-id-1", "ParticipantTag": "LEG-A",
                "InputDigitsRegex": "^\\d{2}#$",
                "AudioSource": {"Type": "S3", "BucketName": "bucket-name", "Key": "audio-file-1.wav"},
                "FailureAudioSource": {"Type": "S3", "BucketName": "bucket-name", "Key": "audio-file-failure.wav"},
                "MinNumberOfDigits": 3, "MaxNumberOfDigits": 5, "TerminatorDigits": ["#"],
                "InBetweenDigitsDurationInMilliseconds": 5000, "Repeat": 3,
                "RepeatDurationInMilliseconds": 10000}},
            {"Type": "JoinChimeMeeting", "Parameters": {"JoinToken": "meeting-attendee-join-token"}}],
          "TransactionAttributes": {"pin": "1234"}}"##,
    )
    .expect("valid");
    let ActionList::Replace(actions) = &r.actions else {
        panic!("replace")
    };
    let ActionKind::PlayAudioAndGetDigits(p) = &actions[0].kind else {
        panic!("{:?}", actions[0])
    };
    assert_eq!(
        (p.min_number_of_digits, p.max_number_of_digits, p.repeat),
        (Some(3), Some(5), Some(3))
    );
    assert_eq!(p.leg.participant_tag, Some(ParticipantTag::LegA));
    assert_eq!(actions[1].type_name(), "JoinChimeMeeting");
    assert_eq!(
        actions[0].parameters["AudioSource"]["Key"],
        "audio-file-1.wav"
    );
    assert_eq!(r.transaction_attributes.unwrap()["pin"], "1234");

    let r = parse_response(
        br##"{"SchemaVersion": "1.0", "Actions": [
            {"Type": "PlayAudio", "Parameters": {"ParticipantTag": "LEG-A", "Repeat": "5",
              "PlaybackTerminators": ["1", "8", "#"],
              "AudioSource": {"Type": "S3", "BucketName": "bucket-name", "Key": "audio-file.wav"}}},
            {"Type": "RecordAudio", "Parameters": {"DurationInSeconds": "10", "SilenceDurationInSeconds": 3,
              "RecordingTerminators": ["#"], "RecordingDestination": {"Type": "S3", "BucketName": "bucket-name"}}},
            {"Type": "Hangup", "Parameters": {"SipResponseCode": "0"}},
            {"Type": "CallAndBridge", "Parameters": {"CallTimeoutSeconds": 30, "CallerIdNumber": "+12065550100",
              "Endpoints": [{"BridgeEndpointType": "PSTN", "Uri": "+12065550199"}]}},
            {"Type": "VoiceFocus", "Parameters": {"CallId": "c", "Enable": true}}]}"##,
    )
    .expect("valid");
    let ActionList::Replace(actions) = &r.actions else {
        panic!("replace")
    };
    let ActionKind::PlayAudio(p) = &actions[0].kind else {
        panic!()
    };
    assert_eq!(p.repeat, Some(5));
    let ActionKind::RecordAudio(a) = &actions[1].kind else {
        panic!()
    };
    assert_eq!(
        (a.duration_in_seconds, a.silence_duration_in_seconds),
        (Some(10), Some(3))
    );
    assert!(!actions[2].answers_call() && actions[0].answers_call());
    assert_eq!(r.transaction_attributes, None, "absent attributes are kept");
}

#[test]
fn null_actions_keep_and_empty_actions_stop() {
    let keep = parse_response(br#"{"SchemaVersion":"1.0","Actions":null}"#).unwrap();
    assert_eq!(keep.actions, ActionList::Keep);
    let keep = parse_response(br#"{"SchemaVersion":"1.0"}"#).unwrap();
    assert_eq!(keep.actions, ActionList::Keep);
    let stop =
        parse_response(br#"{"SchemaVersion":"1.0","Actions":[],"TransactionAttributes":{}}"#)
            .unwrap();
    assert_eq!(stop.actions, ActionList::Replace(vec![]));
    assert_eq!(stop.transaction_attributes, Some(Default::default()));
}

fn refused(body: &str) -> (InvalidResponseKind, String) {
    let e = parse_response(body.as_bytes()).expect_err(body);
    (e.kind, e.message)
}

#[test]
fn bad_answers_are_refused_with_the_reason() {
    use InvalidResponseKind::*;
    let hangup = r#"{"Type":"Hangup","Parameters":{}}"#;
    let eleven = [hangup; 11].join(",");
    let cases = [
        ("not json", MalformedResponse, "not JSON"),
        ("[1]", MalformedResponse, "JSON object"),
        (
            r#"{"Actions":[]}"#,
            UnsupportedSchemaVersion,
            "SchemaVersion is required",
        ),
        (
            r#"{"SchemaVersion":"2.0","Actions":[]}"#,
            UnsupportedSchemaVersion,
            "\"2.0\"",
        ),
        (
            r#"{"SchemaVersion":"1.0","Actions":{}}"#,
            MalformedResponse,
            "Actions must be a list",
        ),
        (
            &format!(r#"{{"SchemaVersion":"1.0","Actions":[{eleven}]}}"#),
            TooManyActions,
            "11 actions",
        ),
        (
            r#"{"SchemaVersion":"1.0","Actions":[{"Type":"Dance"}]}"#,
            InvalidActionType,
            "\"Dance\"",
        ),
        (
            r#"{"SchemaVersion":"1.0","Actions":[{"Parameters":{}}]}"#,
            MissingRequiredParameter,
            "Actions[0].Type",
        ),
        (
            r#"{"SchemaVersion":"1.0","Actions":[{"Type":"Hangup"},{"Type":"PlayAudio","Parameters":{"AudioSource":{"Type":"S3","BucketName":"b"}}}]}"#,
            MissingRequiredParameter,
            "Actions[1].Parameters.AudioSource.Key is required for PlayAudio",
        ),
        (
            r#"{"SchemaVersion":"1.0","Actions":[{"Type":"Pause","Parameters":{"DurationInMilliseconds":"soon"}}]}"#,
            InvalidActionParameter,
            "\"soon\"",
        ),
        (
            r#"{"SchemaVersion":"1.0","Actions":[{"Type":"Pause","Parameters":{"DurationInMilliseconds":-1}}]}"#,
            InvalidActionParameter,
            "-1",
        ),
        (
            r#"{"SchemaVersion":"1.0","Actions":[{"Type":"Hangup","Parameters":{"SipResponseCode":"503"}}]}"#,
            InvalidActionParameter,
            "SipResponseCode",
        ),
        (
            r#"{"SchemaVersion":"1.0","Actions":[{"Type":"Hangup","Parameters":{"ParticipantTag":"LEG-C"}}]}"#,
            InvalidActionParameter,
            "LEG-C",
        ),
        (
            r#"{"SchemaVersion":"1.0","Actions":[{"Type":"SendDigits","Parameters":{"CallId":"c","Digits":"12x"}}]}"#,
            InvalidActionParameter,
            "Digits",
        ),
        (
            r#"{"SchemaVersion":"1.0","Actions":[{"Type":"ModifyChimeMeetingAttendees","Parameters":{"Operation":"Deafen","MeetingId":"m","AttendeeList":["a"]}}]}"#,
            InvalidActionParameter,
            "Deafen",
        ),
        (
            r#"{"SchemaVersion":"1.0","Actions":[{"Type":"CallAndBridge","Parameters":{"CallerIdNumber":"+12065550100","Endpoints":[]}}]}"#,
            InvalidActionParameter,
            "exactly one endpoint",
        ),
        (
            r#"{"SchemaVersion":"1.0","Actions":[{"Type":"PlayAudio","Parameters":{"AudioSource":{"Type":"HTTP","BucketName":"b","Key":"k"}}}]}"#,
            InvalidActionParameter,
            "only S3",
        ),
        (
            r#"{"SchemaVersion":"1.0","Actions":[],"TransactionAttributes":{"n":1}}"#,
            InvalidTransactionAttributes,
            "TransactionAttributes.n",
        ),
    ];
    for (body, kind, needle) in cases {
        let (k, msg) = refused(body);
        assert_eq!(k, kind, "{body}: {msg}");
        assert!(msg.contains(needle), "{body}: {msg:?} lacks {needle:?}");
    }
}

#[test]
fn transaction_attribute_limits() {
    let pairs = |n: usize, len: usize| {
        let m: serde_json::Map<String, serde_json::Value> = (0..n)
            .map(|i| {
                (
                    format!("k{i:03}"),
                    serde_json::Value::String("v".repeat(len)),
                )
            })
            .collect();
        serde_json::json!({"SchemaVersion": "1.0", "TransactionAttributes": m}).to_string()
    };
    assert!(parse_response(pairs(100, 10).as_bytes()).is_ok());
    let (k, msg) = refused(&pairs(101, 1));
    assert_eq!(k, InvalidResponseKind::InvalidTransactionAttributes);
    assert!(msg.contains("101 pairs"), "{msg}");
    // 100 pairs of 4-byte keys and 200-byte values: 20 400 bytes, just under 20 KB (20 480).
    assert!(parse_response(pairs(100, 200).as_bytes()).is_ok());
    let (_, msg) = refused(&pairs(100, 201));
    assert!(msg.contains("20500 bytes"), "{msg}");
}
