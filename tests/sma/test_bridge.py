"""CallAndBridge end to end (issue 13): a phone on the carrier's side (PHONE_HOST) calls a
number with a ToPhoneNumber rule and the function (a webhook in this process) answers
NEW_INBOUND_CALL with CallAndBridge. The phone hears the RingbackTone while LEG-B rings. LEG-B is dialled through the best carrier for a PSTN
Uri (a pjsua2 callee on 127.0.0.2), or through the first origination route of the voice
connector an AWS endpoint's Arn names (a pjsua2 callee on 127.0.0.3); its media goes into
the call's own mixer, so phone and callee hear each other's tones. The callee's BYE is
HANGUP for LEG-B while LEG-A stays up; the function's Hangup then ends LEG-A. A busy
callee (486) is ACTION_FAILED with the code in the message.
"""

from __future__ import annotations

import time
import uuid

from flowlab import (ARN, PHONE_HOST, Webhook, actions, add_function, add_numbers, phone, rule_for_number, s3,
                     tone_wav)
from vctest.server import find_binary

DIAL_IN = "+12065550189"
CALLER_ID = "+12065550191"
TO = "+14155550177"
TONE_MIN_DB = -30.0


def leg(event: dict, tag: str) -> dict | None:
    found = [p for p in event["CallDetails"]["Participants"] if p["ParticipantTag"] == tag]
    return found[0] if found else None


def bridge(endpoint: dict, ringback: dict | None, timeout: int = 20) -> dict:
    params = {"CallTimeoutSeconds": timeout, "CallerIdNumber": CALLER_ID, "Endpoints": [endpoint],
              "SipHeaders": {"X-Case": "7"}}
    if ringback is not None:
        params["RingbackTone"] = ringback
    return actions({"Type": "CallAndBridge", "Parameters": params})


def hang_up_a() -> dict:
    return actions({"Type": "Hangup", "Parameters": {"ParticipantTag": "LEG-A", "SipResponseCode": "0"}})


def setup(lab, tools, app):
    """The phone's carrier (a fallback for +1 numbers, priority 9), the function's webhook,
    the dial-in number and caller id; the server; the rule. Returns (server, webhook)."""
    binary = find_binary()
    lab.add_carrier("phone-co", f"{PHONE_HOST}:{tools.free_udp_port(PHONE_HOST)}", 9, "PCMU",
                    "--source", f"{PHONE_HOST}/32")
    hook = Webhook(app)
    add_function(binary, lab.data_dir, ARN, hook.url)
    add_numbers(binary, lab.data_dir, DIAL_IN, CALLER_ID)
    server = lab.start_server()
    rule_for_number(server.client("chime-sdk-voice"), DIAL_IN)
    return server, hook


def assert_not_bridged(server, hook, state: dict, phone_run: dict, why: str) -> None:
    """The function's CallAndBridge failed CallNotAnswered with `why` in its message, and
    its Hangup then ended the phone's call (our BYE)."""
    assert not hook.errors, hook.errors
    kinds = hook.kinds()
    assert kinds[:2] == ["NEW_INBOUND_CALL", "ACTION_FAILED"], (kinds, server.log()[-3000:])
    data = hook.events[1]["ActionData"]
    assert data["Type"] == "CallAndBridge" and data["ErrorType"] == "CallNotAnswered", data
    assert why in data["ErrorMessage"], data
    assert phone_run["confirmed"] and phone_run.get("remote_bye", "").startswith("BYE"), phone_run
    assert "bridged_at" not in state


def app_that_bridges(endpoint: dict, state: dict, ringback: dict | None = None, timeout: int = 20):
    """Bridges on NEW_INBOUND_CALL (CallTimeoutSeconds `timeout`); hangs LEG-A up when LEG-B
    has hung up or the bridge failed."""
    def app(event: dict):
        kind = event["InvocationEventType"]
        data = event.get("ActionData") or {}
        if kind == "NEW_INBOUND_CALL":
            return bridge(endpoint, ringback, timeout)
        if kind == "ACTION_SUCCESSFUL" and data.get("Type") == "CallAndBridge":
            state["bridged_at"] = time.time()
        if kind == "ACTION_FAILED":
            return hang_up_a()
        if kind == "HANGUP":
            a, b = leg(event, "LEG-A"), leg(event, "LEG-B")
            if b and b["Status"] == "Disconnected" and a["Status"] == "Connected":
                state["leg_b_gone"] = event
                return hang_up_a()
        return actions()
    return app


def test_bridge_to_a_pstn_number(pstn_lab, pstn_tools, tmp_path):
    lab, tools = pstn_lab, pstn_tools
    state: dict = {}
    callee_wav, phone_wav = tmp_path / "callee.wav", tmp_path / "phone.wav"
    tone_wav(lab.data_dir / "audio" / "prompts" / "ringback.wav", 2000, 1.0)
    c1 = lab.callee("c1", "127.0.0.2", play=lab.tones[1000], record=callee_wav, duration=8.0, answer_after=3.0)
    lab.add_carrier("c1", c1.address, 1, "PCMU")
    app = app_that_bridges({"BridgeEndpointType": "PSTN", "Uri": TO}, state, s3("prompts", "ringback.wav"))
    server, hook = setup(lab, tools, app)
    try:
        ph = phone(lab, DIAL_IN, play=lab.tones[440], record=phone_wav, duration=30.0)
        ph.wait_media()
        phone_started = time.time()
        callee_run = c1.result()
        phone_run = ph.result()
    finally:
        hook.close()

    assert not hook.errors, hook.errors
    log = server.log()[-3000:]
    assert callee_run["confirmed"] and callee_run["bye_from"] == "callee", (callee_run, log)
    invite = callee_run["invite"]
    assert tools.sip_user(invite["from"]) == CALLER_ID and tools.sip_user(invite["request_uri"]) == TO, invite
    assert ["X-Case", "7"] in [[n, v.strip()] for n, v in invite["headers"]], invite["headers"]

    kinds = hook.kinds()
    assert kinds[:2] == ["NEW_INBOUND_CALL", "ACTION_SUCCESSFUL"], (kinds, log)
    ok = hook.events[1]
    b = leg(ok, "LEG-B")
    assert b and b["Direction"] == "Outbound" and b["Status"] == "Connected", ok
    assert b["To"] == TO and b["From"] == CALLER_ID, b
    assert "leg_b_gone" in state, kinds
    # LEG-B's hang-up left LEG-A up until the function's Hangup: the phone got our BYE.
    assert phone_run["confirmed"] and phone_run.get("remote_bye", "").startswith("BYE"), phone_run
    assert kinds[-1] == "HANGUP" and leg(hook.events[-1], "LEG-A")["Status"] == "Disconnected", kinds

    # Bridged: the callee hears the phone's 440 Hz and the phone the callee's 1000 Hz.
    bridged = state["bridged_at"]
    window = (bridged - callee_run["confirmed_at"] + 1.0, bridged - callee_run["confirmed_at"] + 5.0)
    heard = tools.tone_levels(callee_wav, freqs=(440, 1000), window=window)
    assert heard[440] > TONE_MIN_DB and heard["present"][440] > 0.8, f"the callee does not hear the phone: {heard}"
    window = (bridged - phone_started + 1.0, bridged - phone_started + 5.0)
    heard = tools.tone_levels(phone_wav, freqs=(440, 1000, 2000), window=window)
    assert heard[1000] > TONE_MIN_DB and heard["present"][1000] > 0.8, f"the phone does not hear the callee: {heard}"
    assert heard["present"][2000] < 0.1, f"the ringback tone goes on after the answer: {heard}"
    # While LEG-B rang (3 s), the phone heard the RingbackTone.
    window = (0.5, bridged - phone_started - 0.5)
    heard = tools.tone_levels(phone_wav, freqs=(1000, 2000), window=window)
    assert heard[2000] > TONE_MIN_DB and heard["present"][2000] > 0.6, f"no ringback tone in {window}: {heard}"

    # One record per leg of the transaction, with AWS's SMA record fields.
    tx = ok["CallDetails"]["TransactionId"]
    records = [r for r in server.wait_call_records(n=2) if r["TransactionId"] == tx]
    by_trigger = {r.get("CallLegTriggerType"): r for r in records}
    assert set(by_trigger) == {"ToPhoneNumber", "CallAndBridge"}, records
    a_rec, b_rec = by_trigger["ToPhoneNumber"], by_trigger["CallAndBridge"]
    assert a_rec["CallId"] == leg(ok, "LEG-A")["CallId"] and b_rec["CallId"] == b["CallId"], records
    for r in records:
        assert r["SipApplicationId"] == ok["CallDetails"]["SipMediaApplicationId"], r
        assert r["Status"] == "Completed" and r["BillableDurationSeconds"] > 0, r
    assert a_rec["SipRuleId"] == ok["CallDetails"]["SipRuleId"] and a_rec["Direction"] == "Inbound", a_rec
    assert b_rec["Direction"] == "Outbound" and b_rec["DestinationPhoneNumber"] == TO, b_rec


def test_bridge_to_a_voice_connector(pstn_lab, pstn_tools, tmp_path):
    """An AWS endpoint: the connector's origination route (a callee on 127.0.0.3) gets the
    INVITE for the Uri, with the connector's X-VoiceConnector-ID."""
    lab, tools = pstn_lab, pstn_tools
    state: dict = {}
    c2 = lab.callee("pbx", "127.0.0.3", play=lab.tones[1000], duration=3.0)
    endpoint: dict = {"BridgeEndpointType": "AWS", "Uri": "+14155550178"}
    server, hook = setup(lab, tools, app_that_bridges(endpoint, state))
    try:
        voice = server.client("chime-sdk-voice")
        vc = voice.create_voice_connector(Name="bridge-" + uuid.uuid4().hex[:8], RequireEncryption=False)
        vc = vc["VoiceConnector"]
        host, port = c2.address.rsplit(":", 1)
        voice.put_voice_connector_origination(VoiceConnectorId=vc["VoiceConnectorId"], Origination={
            "Routes": [{"Host": host, "Port": int(port), "Protocol": "UDP", "Priority": 1, "Weight": 1}],
            "Disabled": False})
        endpoint["Arn"] = vc["VoiceConnectorArn"]
        phone_run = phone(lab, DIAL_IN, play=lab.tones[440], duration=30.0).result()
        callee_run = c2.result()
    finally:
        hook.close()

    assert not hook.errors, hook.errors
    log = server.log()[-3000:]
    assert callee_run["confirmed"], (callee_run, log)
    invite = callee_run["invite"]
    assert tools.sip_user(invite["request_uri"]) == "+14155550178", invite
    headers = [[n, v.strip()] for n, v in invite["headers"]]
    assert ["X-VoiceConnector-ID", vc["VoiceConnectorId"]] in headers, headers
    kinds = hook.kinds()
    assert kinds[:2] == ["NEW_INBOUND_CALL", "ACTION_SUCCESSFUL"], (kinds, log)
    assert "leg_b_gone" in state, kinds
    assert phone_run["confirmed"] and phone_run.get("remote_bye", "").startswith("BYE"), phone_run


def test_bridge_to_a_busy_number(pstn_lab, pstn_tools):
    lab, tools = pstn_lab, pstn_tools
    state: dict = {}
    c1 = lab.callee("busy", "127.0.0.2", status=486, answer_after=0.5)
    lab.add_carrier("busy", c1.address, 1, "PCMU")
    server, hook = setup(lab, tools, app_that_bridges({"BridgeEndpointType": "PSTN", "Uri": TO}, state))
    try:
        phone_run = phone(lab, DIAL_IN, duration=30.0).result()
        c1.stop()
    finally:
        hook.close()
    assert_not_bridged(server, hook, state, phone_run, "486")
    assert leg(hook.events[1], "LEG-B") is None, hook.events[1]


def test_bridge_to_a_number_that_rings_too_long(pstn_lab, pstn_tools):
    """CallTimeoutSeconds 2 and a callee that only rings: LEG-B is CANCELled, the function
    gets ACTION_FAILED CallNotAnswered naming the timeout, and its Hangup ends the call."""
    lab, tools = pstn_lab, pstn_tools
    state: dict = {}
    c1 = lab.callee("ringing", "127.0.0.2", never_answer=True, timeout=30.0)
    lab.add_carrier("ringing", c1.address, 1, "PCMU")
    endpoint = {"BridgeEndpointType": "PSTN", "Uri": TO}
    server, hook = setup(lab, tools, app_that_bridges(endpoint, state, timeout=2))
    try:
        phone_run = phone(lab, DIAL_IN, duration=30.0).result()
        callee_run = c1.result()
    finally:
        hook.close()
    assert_not_bridged(server, hook, state, phone_run, "CallTimeoutSeconds")
    assert callee_run["ended"] == "cancelled" and callee_run["cancel"].startswith("CANCEL"), callee_run


def test_bridge_respects_the_carriers_max_calls(pstn_lab, pstn_tools):
    """The carrier takes one call at a time (`--max-calls 1`): while the first phone's LEG-B
    rings there, the second phone's CallAndBridge fails with ACTION_FAILED naming the
    limit; the first one's LEG-B is CANCELled at its CallTimeoutSeconds."""
    lab, tools = pstn_lab, pstn_tools
    state: dict = {}
    c1 = lab.callee("one-line", "127.0.0.2", never_answer=True, timeout=30.0)
    lab.add_carrier("one-line", c1.address, 1, "PCMU", "--max-calls", "1")
    endpoint = {"BridgeEndpointType": "PSTN", "Uri": TO}
    server, hook = setup(lab, tools, app_that_bridges(endpoint, state, timeout=8))
    try:
        first = phone(lab, DIAL_IN, name="first", duration=20.0)
        first.wait_media()
        hook.wait_for("NEW_INBOUND_CALL")
        time.sleep(1.0)
        second = phone(lab, DIAL_IN, name="second", duration=20.0)
        failed = hook.wait_for("ACTION_FAILED", timeout=20)
        second_run, first_run = second.result(), first.result()
        callee_run = c1.result()
    finally:
        hook.close()
    assert not hook.errors, hook.errors
    data = failed["ActionData"]
    assert data["Type"] == "CallAndBridge" and "max calls (1)" in data["ErrorMessage"], data
    assert first_run["confirmed"] and second_run["confirmed"], (first_run, second_run)
    # The carrier's one INVITE was the first phone's, cancelled at its CallTimeoutSeconds.
    assert callee_run["ended"] == "cancelled", callee_run
