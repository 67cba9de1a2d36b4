//! The call flow on virtual time: a scripted function answers each invocation, the test
//! plays the driver.

use std::time::Duration;

use super::*;
use crate::sma::action::parse_response;

const A: &str = "call-a";
const B: &str = "call-b";

fn ctx() -> FlowContext {
    FlowContext {
        transaction_id: "tx-1".into(),
        aws_region: "us-east-1".into(),
        sip_rule_id: Some("rule-1".into()),
        sip_media_application_id: "sma-1".into(),
    }
}

fn leg(call_id: &str, tag: ParticipantTag, direction: Direction) -> FlowLeg {
    FlowLeg {
        call_id: call_id.into(),
        tag,
        to: "+12065550100".into(),
        from: "+15105550101".into(),
        direction,
        start_ms: 1_700_000_000_000,
    }
}

fn answer(json: &str) -> Result<FunctionResponse, InvalidResponse> {
    parse_response(json.as_bytes())
}

fn actions(list: &str) -> Result<FunctionResponse, InvalidResponse> {
    answer(&format!(r#"{{"SchemaVersion":"1.0","Actions":{list}}}"#))
}

fn drain(f: &mut CallFlow) -> Vec<FlowCommand> {
    std::iter::from_fn(|| f.poll_command()).collect()
}

/// The one Invoke among `cmds`.
fn invoked(cmds: &[FlowCommand]) -> InvocationEvent {
    let mut events = cmds.iter().filter_map(|c| match c {
        FlowCommand::Invoke(e) => Some(e.clone()),
        _ => None,
    });
    let e = events.next().expect("an Invoke");
    assert!(events.next().is_none(), "one Invoke at a time: {cmds:?}");
    e
}

fn no_invoke(cmds: &[FlowCommand]) {
    assert!(
        !cmds.iter().any(|c| matches!(c, FlowCommand::Invoke(_))),
        "{cmds:?}"
    );
}

fn status(e: &InvocationEvent, call_id: &str) -> ParticipantStatus {
    e.call_details
        .participants
        .iter()
        .find(|p| p.call_id == call_id)
        .map(|p| p.status)
        .expect("participant listed")
}

/// LEG-A hung up with 480 and the transaction over, without telling the function.
fn assert_ended_480(f: &mut CallFlow) {
    let ended = vec![
        FlowCommand::Hangup {
            call_id: A.into(),
            sip_code: UNAVAILABLE,
        },
        FlowCommand::Done,
    ];
    assert_eq!(drain(f), ended);
    assert!(f.is_done());
}

fn play_s3(key: &str) -> Audio {
    Audio::S3(AudioSource {
        kind: "S3".into(),
        bucket_name: "prompts".into(),
        key: key.into(),
    })
}

const GET_PIN: &str = r##"[{"Type":"PlayAudioAndGetDigits","Parameters":{
    "InputDigitsRegex":"^\\d{4}$",
    "AudioSource":{"Type":"S3","BucketName":"prompts","Key":"pin.wav"},
    "FailureAudioSource":{"Type":"S3","BucketName":"prompts","Key":"wrong.wav"},
    "MinNumberOfDigits":4,"MaxNumberOfDigits":8,"TerminatorDigits":["#"],
    "InBetweenDigitsDurationInMilliseconds":3000,
    "Repeat":2,"RepeatDurationInMilliseconds":1000}}]"##;

/// A flow that got NEW_INBOUND_CALL answered with `list`; returns the commands that
/// answer produced.
fn inbound_with(now: Instant, list: &str) -> (CallFlow, Vec<FlowCommand>) {
    let mut f = CallFlow::inbound(now, ctx(), leg(A, ParticipantTag::LegA, Direction::Inbound));
    let first = invoked(&drain(&mut f));
    assert_eq!(first.invocation_event_type, EventType::NewInboundCall);
    assert_eq!(first.sequence, 1);
    f.on_function_answer(now, actions(list));
    let cmds = drain(&mut f);
    (f, cmds)
}

fn digits(f: &mut CallFlow, now: Instant, keys: &str) {
    for k in keys.chars() {
        f.on_digit(now, A, k);
    }
}

#[test]
fn pin_dial_in_to_meeting_and_caller_hangs_up() {
    let t = Instant::now();
    let (mut f, cmds) = inbound_with(t, GET_PIN);
    assert_eq!(
        cmds,
        vec![
            FlowCommand::Answer { call_id: A.into() },
            FlowCommand::Play {
                call_id: A.into(),
                audio: play_s3("pin.wav"),
                repeat: 1
            },
        ]
    );
    let t = t + Duration::from_secs(4);
    f.on_play_done(t, A);
    digits(&mut f, t, "1234#");
    let e = invoked(&drain(&mut f));
    assert_eq!(e.sequence, 2);
    assert_eq!(e.invocation_event_type, EventType::ActionSuccessful);
    let data = e.action_data.expect("action data");
    assert_eq!(data.kind, "PlayAudioAndGetDigits");
    assert_eq!(data.received_digits.as_deref(), Some("1234"));

    f.on_function_answer(
        t,
        actions(r#"[{"Type":"JoinChimeMeeting","Parameters":{"JoinToken":"tok"}}]"#),
    );
    let cmds = drain(&mut f);
    assert_eq!(
        cmds,
        vec![FlowCommand::JoinMeeting {
            call_id: A.into(),
            join_token: "tok".into(),
            meeting_id: None
        }]
    );
    f.on_joined(t, A, leg(B, ParticipantTag::LegB, Direction::Outbound));
    let e = invoked(&drain(&mut f));
    assert_eq!(e.sequence, 3);
    assert_eq!(e.invocation_event_type, EventType::ActionSuccessful);
    assert_eq!(e.action_data.as_ref().unwrap().kind, "JoinChimeMeeting");
    assert_eq!(e.call_details.participants.len(), 2);
    assert_eq!(status(&e, B), ParticipantStatus::Connected);
    f.on_function_answer(t, answer(r#"{"SchemaVersion":"1.0"}"#));
    assert!(drain(&mut f).is_empty());

    // The caller hangs up: the meeting leg goes with it, one HANGUP, then Done.
    f.on_leg_ended(t, A, None);
    let cmds = drain(&mut f);
    assert!(cmds.contains(&FlowCommand::Hangup {
        call_id: B.into(),
        sip_code: 0
    }));
    let e = invoked(&cmds);
    assert_eq!(e.invocation_event_type, EventType::Hangup);
    let data = e.action_data.clone().unwrap();
    assert_eq!(data.kind, "Hangup");
    assert_eq!(data.parameters["CallId"], A);
    assert_eq!(data.parameters["ParticipantTag"], "LEG-A");
    assert_eq!(data.parameters["SipResponseCode"], 0);
    assert_eq!(status(&e, A), ParticipantStatus::Disconnected);
    assert_eq!(status(&e, B), ParticipantStatus::Disconnected);
    assert!(!f.is_done());
    // Its answer is ignored.
    f.on_function_answer(
        t,
        actions(r#"[{"Type":"Pause","Parameters":{"DurationInMilliseconds":100}}]"#),
    );
    assert_eq!(drain(&mut f), vec![FlowCommand::Done]);
    assert!(f.is_done());
}

#[test]
fn wrong_pin_plays_failure_then_retries() {
    let t = Instant::now();
    let (mut f, _) = inbound_with(t, GET_PIN);
    f.on_play_done(t, A);
    digits(&mut f, t, "12#");
    assert_eq!(
        drain(&mut f),
        vec![FlowCommand::Play {
            call_id: A.into(),
            audio: play_s3("wrong.wav"),
            repeat: 1
        }]
    );
    f.on_play_done(t, A);
    // RepeatDurationInMilliseconds before the prompt again.
    assert_eq!(f.poll_timeout(), Some(t + Duration::from_millis(1000)));
    f.handle_timeout(t + Duration::from_millis(999));
    assert!(drain(&mut f).is_empty());
    let t = t + Duration::from_millis(1000);
    f.handle_timeout(t);
    assert_eq!(
        drain(&mut f),
        vec![FlowCommand::Play {
            call_id: A.into(),
            audio: play_s3("pin.wav"),
            repeat: 1
        }]
    );
    // Barge-in: a key during the prompt stops it and counts.
    f.on_digit(t, A, '9');
    assert_eq!(
        drain(&mut f),
        vec![FlowCommand::StopPlay { call_id: A.into() }]
    );
    digits(&mut f, t, "876#");
    let e = invoked(&drain(&mut f));
    assert_eq!(e.invocation_event_type, EventType::ActionSuccessful);
    assert_eq!(
        e.action_data.unwrap().received_digits.as_deref(),
        Some("9876")
    );
}

#[test]
fn silence_between_digits_ends_input_and_attempts_run_out() {
    let t = Instant::now();
    let (mut f, _) = inbound_with(t, GET_PIN);
    f.on_play_done(t, A);
    // No key at all for InBetweenDigitsDurationInMilliseconds: first attempt fails.
    let t = t + Duration::from_millis(3000);
    assert_eq!(f.poll_timeout(), Some(t));
    f.handle_timeout(t);
    assert!(matches!(&drain(&mut f)[..], [FlowCommand::Play { .. }]));
    f.on_play_done(t, A);
    let t = t + Duration::from_millis(1000);
    f.handle_timeout(t);
    drain(&mut f);
    f.on_play_done(t, A);
    // Second attempt: 3 keys, then silence; fewer than MinNumberOfDigits.
    f.on_digit(t, A, '1');
    let t = t + Duration::from_millis(2000);
    f.on_digit(t, A, '2');
    f.on_digit(t, A, '3');
    f.handle_timeout(t + Duration::from_millis(2999));
    assert!(drain(&mut f).is_empty());
    f.handle_timeout(t + Duration::from_millis(3000));
    let e = invoked(&drain(&mut f));
    assert_eq!(e.invocation_event_type, EventType::ActionFailed);
    let data = e.action_data.unwrap();
    assert_eq!(data.error_type.as_deref(), Some("InvalidDigitsReceived"));
    assert_eq!(f.poll_timeout(), None);
}

#[test]
fn hangup_first_rejects_without_answering() {
    let t = Instant::now();
    let (mut f, cmds) = inbound_with(
        t,
        r#"[{"Type":"Hangup","Parameters":{"SipResponseCode":"486"}}]"#,
    );
    assert_eq!(
        cmds[0],
        FlowCommand::Hangup {
            call_id: A.into(),
            sip_code: 486
        }
    );
    assert!(!cmds.iter().any(|c| matches!(c, FlowCommand::Answer { .. })));
    let e = invoked(&cmds);
    assert_eq!(e.invocation_event_type, EventType::Hangup);
    assert_eq!(e.action_data.unwrap().parameters["SipResponseCode"], 486);
    f.on_function_answer(t, actions("[]"));
    assert_eq!(drain(&mut f), vec![FlowCommand::Done]);
    // The driver's report of the leg it ended changes nothing.
    f.on_leg_ended(t, A, Some(486));
    assert!(drain(&mut f).is_empty());
}

#[test]
fn hangup_zero_on_ringing_call_is_480() {
    let t = Instant::now();
    let (_, cmds) = inbound_with(t, r#"[{"Type":"Hangup","Parameters":{}}]"#);
    assert_eq!(
        cmds[0],
        FlowCommand::Hangup {
            call_id: A.into(),
            sip_code: 480
        }
    );
}

#[test]
fn pause_is_a_timer_and_the_last_action_reports() {
    let t = Instant::now();
    let (mut f, cmds) = inbound_with(
        t,
        r##"[{"Type":"Pause","Parameters":{"DurationInMilliseconds":"1500"}},
            {"Type":"SendDigits","Parameters":{"CallId":"call-a","Digits":"12#"}}]"##,
    );
    assert_eq!(cmds, vec![FlowCommand::Answer { call_id: A.into() }]);
    assert_eq!(f.poll_timeout(), Some(t + Duration::from_millis(1500)));
    f.handle_timeout(t + Duration::from_millis(1499));
    assert!(drain(&mut f).is_empty());
    f.handle_timeout(t + Duration::from_millis(1500));
    let cmds = drain(&mut f);
    assert_eq!(
        cmds[0],
        FlowCommand::SendDigits {
            call_id: A.into(),
            digits: "12#".into(),
            tone_ms: 250
        }
    );
    let e = invoked(&cmds);
    assert_eq!(e.invocation_event_type, EventType::ActionSuccessful);
    assert_eq!(e.action_data.unwrap().kind, "SendDigits");
}

#[test]
fn null_actions_keep_running_empty_list_stops() {
    let t = Instant::now();
    let (mut f, _) = inbound_with(
        t,
        r#"[{"Type":"ReceiveDigits","Parameters":{"InputDigitsRegex":"^\\*\\d$",
              "InBetweenDigitsDurationInMilliseconds":500,"FlushDigitsDurationInMilliseconds":5000}},
            {"Type":"PlayAudio","Parameters":{"Repeat":3,
              "AudioSource":{"Type":"S3","BucketName":"prompts","Key":"hold.wav"}}}]"#,
    );
    // ReceiveDigits does not report (not last); the hold music plays.
    f.on_digit(t, A, '*');
    f.on_digit(t, A, '5');
    f.handle_timeout(t + Duration::from_millis(500));
    let e = invoked(&drain(&mut f));
    assert_eq!(e.invocation_event_type, EventType::DigitsReceived);
    assert_eq!(
        e.action_data.unwrap().received_digits.as_deref(),
        Some("*5")
    );
    // Null: the music goes on.
    f.on_function_answer(t, answer(r#"{"SchemaVersion":"1.0","Actions":null}"#));
    assert!(drain(&mut f).is_empty());
    f.on_update_requested(t, BTreeMap::new());
    let e = invoked(&drain(&mut f));
    assert_eq!(e.invocation_event_type, EventType::CallUpdateRequested);
    // []: the music is interrupted.
    f.on_function_answer(t, actions("[]"));
    let cmds = drain(&mut f);
    assert_eq!(cmds[0], FlowCommand::StopPlay { call_id: A.into() });
    let e = invoked(&cmds);
    assert_eq!(e.invocation_event_type, EventType::ActionInterrupted);
    assert_eq!(e.action_data.unwrap().kind, "PlayAudio");
    // The answer to ACTION_INTERRUPTED is ignored.
    f.on_function_answer(
        t,
        actions(r#"[{"Type":"Pause","Parameters":{"DurationInMilliseconds":100}}]"#),
    );
    assert!(drain(&mut f).is_empty());
    assert_eq!(f.poll_timeout(), None);
}

#[test]
fn failed_action_drops_the_rest() {
    let t = Instant::now();
    let (mut f, cmds) = inbound_with(
        t,
        r#"[{"Type":"PlayAudio","Parameters":{"CallId":"nobody",
              "AudioSource":{"Type":"S3","BucketName":"prompts","Key":"a.wav"}}},
            {"Type":"Pause","Parameters":{"DurationInMilliseconds":100}}]"#,
    );
    let e = invoked(&cmds);
    assert_eq!(e.invocation_event_type, EventType::ActionFailed);
    let data = e.action_data.unwrap();
    assert_eq!(data.error_type.as_deref(), Some("InvalidActionParameter"));
    assert!(data.error_message.unwrap().contains("nobody"));
    assert_eq!(f.poll_timeout(), None, "the Pause was dropped");
    // A driver error on a running prompt does the same.
    f.on_function_answer(
        t,
        actions(
            r#"[{"Type":"PlayAudio","Parameters":{"AudioSource":{"Type":"S3","BucketName":"prompts","Key":"gone.wav"}}},
                {"Type":"Hangup","Parameters":{}}]"#,
        ),
    );
    drain(&mut f);
    f.on_action_error(t, A, "InvalidAudioSource", "no such prompt");
    let cmds = drain(&mut f);
    let e = invoked(&cmds);
    assert_eq!(e.invocation_event_type, EventType::ActionFailed);
    assert_eq!(
        e.action_data.unwrap().error_type.as_deref(),
        Some("InvalidAudioSource")
    );
    assert!(!cmds.iter().any(|c| matches!(c, FlowCommand::Hangup { .. })));
}

#[test]
fn unsupported_actions_fail_saying_so() {
    let t = Instant::now();
    let (_, cmds) = inbound_with(
        t,
        r#"[{"Type":"VoiceFocus","Parameters":{"CallId":"call-a","Enable":true}}]"#,
    );
    let data = invoked(&cmds).action_data.unwrap();
    assert_eq!(data.error_type.as_deref(), Some("SystemException"));
    assert!(data.error_message.unwrap().contains("not supported"));
}

#[test]
fn invalid_answers_are_reported_then_end_the_call() {
    let t = Instant::now();
    let mut f = CallFlow::inbound(t, ctx(), leg(A, ParticipantTag::LegA, Direction::Inbound));
    drain(&mut f);
    f.on_function_answer(t, answer("not json"));
    let e = invoked(&drain(&mut f));
    assert_eq!(e.invocation_event_type, EventType::InvalidLambdaResponse);
    assert_eq!(e.error_type.as_deref(), Some("MalformedResponse"));
    assert_eq!(e.sequence, 2);
    f.on_function_answer(t, answer(r#"{"SchemaVersion":"2.0"}"#));
    let e = invoked(&drain(&mut f));
    assert_eq!(e.error_type.as_deref(), Some("UnsupportedSchemaVersion"));
    f.on_function_answer(
        t,
        answer(r#"{"SchemaVersion":"1.0","Actions":[{"Type":"Dance"}]}"#),
    );
    assert_ended_480(&mut f);
}

#[test]
fn unreachable_function_hangs_up_480() {
    let t = Instant::now();
    let (mut f, _) = inbound_with(t, GET_PIN);
    f.on_play_done(t, A);
    digits(&mut f, t, "1234#");
    drain(&mut f);
    f.on_function_unreachable(t);
    assert_ended_480(&mut f);
    assert!(f.is_done());
}

#[test]
fn update_interrupts_music_and_joins_meeting() {
    let t = Instant::now();
    let (mut f, _) = inbound_with(
        t,
        r#"[{"Type":"PlayAudio","Parameters":{"Repeat":10,
              "AudioSource":{"Type":"S3","BucketName":"prompts","Key":"hold.wav"}}}]"#,
    );
    let mut args = BTreeMap::new();
    args.insert("JoinToken".to_string(), "tok-9".to_string());
    f.on_update_requested(t, args);
    let e = invoked(&drain(&mut f));
    assert_eq!(e.invocation_event_type, EventType::CallUpdateRequested);
    let data = e.action_data.unwrap();
    assert_eq!(data.kind, "CallUpdateRequest");
    assert_eq!(data.parameters["Arguments"]["JoinToken"], "tok-9");
    f.on_function_answer(
        t,
        actions(r#"[{"Type":"JoinChimeMeeting","Parameters":{"JoinToken":"tok-9"}}]"#),
    );
    let cmds = drain(&mut f);
    assert_eq!(cmds[0], FlowCommand::StopPlay { call_id: A.into() });
    assert!(
        matches!(&cmds[1], FlowCommand::JoinMeeting { join_token, .. } if join_token == "tok-9")
    );
    assert_eq!(
        invoked(&cmds).invocation_event_type,
        EventType::ActionInterrupted
    );
    // A refused join.
    f.on_function_answer(t, answer(r#"{"SchemaVersion":"1.0"}"#));
    f.on_action_error(
        t,
        A,
        "InvalidActionParameter",
        "JoinToken parameter value is invalid.",
    );
    let e = invoked(&drain(&mut f));
    assert_eq!(e.invocation_event_type, EventType::ActionFailed);
    assert_eq!(e.call_details.participants.len(), 1);
}

#[test]
fn outbound_call_rings_answers_and_fails_to_bridge() {
    let t = Instant::now();
    let mut args = BTreeMap::new();
    args.insert("FirstName".to_string(), "John".to_string());
    let mut f = CallFlow::outbound(
        t,
        ctx(),
        leg(A, ParticipantTag::LegA, Direction::Outbound),
        args,
    );
    let cmds = drain(&mut f);
    let e = invoked(&cmds);
    assert_eq!(e.invocation_event_type, EventType::NewOutboundCall);
    assert_eq!(
        e.call_details.transaction_attributes.unwrap()["FirstName"],
        "John"
    );
    assert_eq!(cmds.last(), Some(&FlowCommand::Dial { call_id: A.into() }));
    // Answers to NEW_OUTBOUND_CALL and RINGING are ignored.
    f.on_function_answer(t, actions(r#"[{"Type":"Hangup","Parameters":{}}]"#));
    no_invoke(&drain(&mut f));
    f.on_ringing(t, A);
    let e = invoked(&drain(&mut f));
    assert_eq!(e.invocation_event_type, EventType::Ringing);
    assert_eq!(e.sequence, 2);
    f.on_function_answer(t, actions("[]"));
    f.on_answered(t, A);
    let cmds = drain(&mut f);
    let e = invoked(&cmds);
    assert_eq!(e.invocation_event_type, EventType::CallAnswered);
    f.on_function_answer(
        t,
        answer(
            r#"{"SchemaVersion":"1.0","TransactionAttributes":{"step":"bridge"},
               "Actions":[{"Type":"CallAndBridge","Parameters":{"CallerIdNumber":"+12065550100",
                 "Endpoints":[{"BridgeEndpointType":"PSTN","Uri":"+14155550123"}]}}]}"#,
        ),
    );
    let cmds = drain(&mut f);
    assert!(
        matches!(&cmds[..], [FlowCommand::Bridge { call_id, .. }] if call_id == A),
        "outbound leg is not answered again: {cmds:?}"
    );
    f.on_action_error(t, A, "CallNotAnswered", "Call not answered");
    let e = invoked(&drain(&mut f));
    assert_eq!(e.invocation_event_type, EventType::ActionFailed);
    assert_eq!(
        e.call_details.transaction_attributes.unwrap()["step"],
        "bridge"
    );
    // The callee hangs up.
    f.on_function_answer(t, answer(r#"{"SchemaVersion":"1.0"}"#));
    f.on_leg_ended(t, A, None);
    let e = invoked(&drain(&mut f));
    assert_eq!(e.invocation_event_type, EventType::Hangup);
    f.on_function_answer(t, actions("[]"));
    assert_eq!(drain(&mut f), vec![FlowCommand::Done]);
}

#[test]
fn bridged_leg_b_hanging_up_lets_the_function_go_on() {
    let t = Instant::now();
    let (mut f, _) = inbound_with(
        t,
        r#"[{"Type":"CallAndBridge","Parameters":{"CallerIdNumber":"+12065550100",
              "Endpoints":[{"BridgeEndpointType":"PSTN","Uri":"+14155550123"}]}}]"#,
    );
    f.on_bridged(t, A, leg(B, ParticipantTag::LegB, Direction::Outbound));
    let e = invoked(&drain(&mut f));
    assert_eq!(e.invocation_event_type, EventType::ActionSuccessful);
    f.on_function_answer(t, answer(r#"{"SchemaVersion":"1.0"}"#));
    f.on_leg_ended(t, B, Some(486));
    let e = invoked(&drain(&mut f));
    assert_eq!(e.invocation_event_type, EventType::Hangup);
    assert_eq!(status(&e, A), ParticipantStatus::Connected);
    assert_eq!(status(&e, B), ParticipantStatus::Disconnected);
    // The answer runs on LEG-A.
    f.on_function_answer(
        t,
        actions(r#"[{"Type":"Hangup","Parameters":{"ParticipantTag":"LEG-A"}}]"#),
    );
    let cmds = drain(&mut f);
    assert_eq!(
        cmds[0],
        FlowCommand::Hangup {
            call_id: A.into(),
            sip_code: 0
        }
    );
    assert_eq!(invoked(&cmds).invocation_event_type, EventType::Hangup);
    f.on_function_answer(t, actions("[]"));
    assert_eq!(drain(&mut f), vec![FlowCommand::Done]);
}

#[test]
fn events_wait_for_the_invocation_in_flight() {
    let t = Instant::now();
    let (mut f, cmds) = inbound_with(
        t,
        r#"[{"Type":"ReceiveDigits","Parameters":{"InputDigitsRegex":"^\\d$",
              "InBetweenDigitsDurationInMilliseconds":100,"FlushDigitsDurationInMilliseconds":1000}}]"#,
    );
    // The list is done: ACTION_SUCCESSFUL is in flight.
    let e = invoked(&cmds);
    assert_eq!(e.sequence, 2);
    f.on_digit(t, A, '7');
    f.on_update_requested(t, BTreeMap::new());
    f.handle_timeout(t + Duration::from_millis(100));
    no_invoke(&drain(&mut f));
    f.on_function_answer(t, answer(r#"{"SchemaVersion":"1.0"}"#));
    let e = invoked(&drain(&mut f));
    assert_eq!(
        (e.sequence, e.invocation_event_type),
        (3, EventType::CallUpdateRequested)
    );
    f.on_function_answer(t, answer(r#"{"SchemaVersion":"1.0"}"#));
    let e = invoked(&drain(&mut f));
    assert_eq!(
        (e.sequence, e.invocation_event_type),
        (4, EventType::DigitsReceived)
    );
    // The listener was one-shot.
    f.on_function_answer(t, answer(r#"{"SchemaVersion":"1.0"}"#));
    f.on_digit(t, A, '8');
    f.handle_timeout(t + Duration::from_secs(2));
    assert!(drain(&mut f).is_empty());
}

#[test]
fn playback_terminator_stops_the_prompt() {
    let t = Instant::now();
    let (mut f, _) = inbound_with(
        t,
        r##"[{"Type":"PlayAudio","Parameters":{"PlaybackTerminators":["#"],
              "AudioSource":{"Type":"S3","BucketName":"prompts","Key":"long.wav"}}}]"##,
    );
    f.on_digit(t, A, '1');
    f.on_digit(t, A, 'x');
    assert!(drain(&mut f).is_empty());
    f.on_digit(t, A, '#');
    let cmds = drain(&mut f);
    assert_eq!(cmds[0], FlowCommand::StopPlay { call_id: A.into() });
    assert_eq!(
        invoked(&cmds).invocation_event_type,
        EventType::ActionSuccessful
    );
    // A late play-done changes nothing.
    f.on_play_done(t, A);
    assert!(drain(&mut f).is_empty());
}

mod recording;
