//! StartCallRecording and its controls on virtual time.

use super::*;

#[test]
fn call_recording_starts_once_and_pauses_only_what_records() {
    let t = Instant::now();
    let start = r##"[{"Type":"StartCallRecording","Parameters":{"CallId":"call-a","Track":"BOTH",
        "Destination":{"Type":"S3","Location":"recs/calls"}}}]"##;
    let (mut f, cmds) = inbound_with(t, start);
    assert_eq!(cmds[0], FlowCommand::Answer { call_id: A.into() });
    assert!(
        matches!(&cmds[1], FlowCommand::CallRecording { call_id, op: RecordingOp::Start(s) }
            if call_id == A && s.destination.location == "recs/calls")
    );
    no_invoke(&cmds);
    f.on_call_recording(t, A, Ok("recs/calls/x.wav"));
    let e = invoked(&drain(&mut f));
    assert_eq!(e.invocation_event_type, EventType::ActionSuccessful);
    let d = e.action_data.unwrap();
    assert_eq!(
        d.call_recording_destination,
        Some(serde_json::json!({"Type": "S3", "Location": "recs/calls/x.wav"}))
    );

    let list = r##"[{"Type":"PauseCallRecording","Parameters":{"CallId":"call-a"}},
        {"Type":"ResumeCallRecording","Parameters":{"CallId":"call-a"}},
        {"Type":"ResumeCallRecording","Parameters":{"CallId":"call-a"}}]"##;
    f.on_function_answer(t, actions(list));
    let cmds = drain(&mut f);
    let ops: Vec<_> = cmds
        .iter()
        .filter_map(|c| match c {
            FlowCommand::CallRecording { op, .. } => Some(op.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(ops, vec![RecordingOp::Pause, RecordingOp::Resume]);
    let e = invoked(&cmds);
    assert_eq!(e.invocation_event_type, EventType::ActionFailed);
    let d = e.action_data.unwrap();
    assert_eq!(d.kind, "ResumeCallRecording");
    assert!(d.error_message.unwrap().contains("not paused"));

    f.on_function_answer(t, actions(start));
    let e = invoked(&drain(&mut f));
    assert_eq!(e.invocation_event_type, EventType::ActionFailed);
    assert!(
        e.action_data
            .unwrap()
            .error_message
            .unwrap()
            .contains("starts once")
    );

    let stop = r##"[{"Type":"StopCallRecording","Parameters":{"CallId":"call-a"}},
        {"Type":"StopCallRecording","Parameters":{"CallId":"call-a"}}]"##;
    f.on_function_answer(t, actions(stop));
    let cmds = drain(&mut f);
    assert!(cmds.contains(&FlowCommand::CallRecording {
        call_id: A.into(),
        op: RecordingOp::Stop
    }));
    let e = invoked(&cmds);
    assert_eq!(e.invocation_event_type, EventType::ActionFailed);
    assert!(
        e.action_data
            .unwrap()
            .error_message
            .unwrap()
            .contains("stopped already")
    );
}
