"""Prompts and recordings in an S3-compatible server (issue 13): moto's server runs beside
the voice connector (`serve --s3-endpoint`); the function's PlayAudio reads its prompt
from a bucket there, and its RecordAudio writes what the caller said to another bucket, as
a WAV the test downloads and analyses; a prompt that is not there fails the action with an
error that names it.
"""

from __future__ import annotations

from flowlab import ARN, PHONE_HOST, Moto, Webhook, actions, add_function, add_numbers, phone, rule_for_number, s3, tone_wav
from vctest.server import find_binary

DIAL_IN = "+12065550177"
TONE_MIN_DB = -30.0


def test_prompt_from_s3_and_recording_to_s3(pstn_lab, pstn_tools, tmp_path):
    lab, tools = pstn_lab, pstn_tools
    moto = Moto(tmp_path / "moto.log")
    hook = None
    try:
        moto.s3.create_bucket(Bucket="vc-prompts")
        moto.s3.create_bucket(Bucket="vc-recordings")
        prompt = tone_wav(tmp_path / "welcome.wav", 600, 1.0)
        moto.s3.put_object(Bucket="vc-prompts", Key="ivr/welcome.wav", Body=prompt.read_bytes())

        def app(event: dict):
            kind = event["InvocationEventType"]
            data = event.get("ActionData") or {}
            if kind == "NEW_INBOUND_CALL":
                return actions(
                    {"Type": "PlayAudio", "Parameters": {"AudioSource": s3("vc-prompts", "ivr/welcome.wav")}},
                    {"Type": "RecordAudio", "Parameters": {
                        "DurationInSeconds": 3, "RecordingTerminators": ["#"],
                        "RecordingDestination": {"Type": "S3", "BucketName": "vc-recordings", "Prefix": "calls"}}})
            if kind == "ACTION_SUCCESSFUL" and data.get("Type") == "RecordAudio":
                return actions(
                    {"Type": "PlayAudio", "Parameters": {"AudioSource": s3("vc-prompts", "ivr/missing.wav")}})
            if kind == "ACTION_FAILED":
                return actions({"Type": "Hangup", "Parameters": {"SipResponseCode": "0"}})
            return actions()

        binary = find_binary()
        lab.add_carrier("phone-co", f"{PHONE_HOST}:{tools.free_udp_port(PHONE_HOST)}", 1, "PCMU",
                        "--source", f"{PHONE_HOST}/32")
        hook = Webhook(app)
        add_function(binary, lab.data_dir, ARN, hook.url)
        add_numbers(binary, lab.data_dir, DIAL_IN)
        server = lab.start_server(extra=moto.server_flags())
        rule_for_number(server.client("chime-sdk-voice"), DIAL_IN)

        heard = tmp_path / "phone.wav"
        run = phone(lab, DIAL_IN, play=lab.tones[440], record=heard, duration=12.0).result()
        hook.wait_for("HANGUP")
        assert run["confirmed"], (run, server.log()[-3000:])
        assert "BYE" in run["remote_bye"], run
        levels = tools.tone_levels(heard, freqs=(440, 600), window=(0.1, 0.9))
        assert levels[600] > TONE_MIN_DB, f"the phone did not hear the prompt from S3: {levels}"

        recorded = [e for e in hook.events if (e.get("ActionData") or {}).get("Type") == "RecordAudio"]
        assert recorded and recorded[0]["InvocationEventType"] == "ACTION_SUCCESSFUL", hook.kinds()
        dest = recorded[0]["ActionData"]["RecordingDestination"]
        assert dest["Type"] == "S3" and dest["BucketName"] == "vc-recordings", dest
        assert dest["Key"].startswith("calls/") and dest["Key"].endswith(".wav"), dest
        listed = moto.s3.list_objects_v2(Bucket="vc-recordings")
        assert [o["Key"] for o in listed.get("Contents", [])] == [dest["Key"]], listed
        # What the phone said (its 440 Hz tone) is in the recording, for about 3 s.
        wav = tmp_path / "recording.wav"
        wav.write_bytes(moto.s3.get_object(Bucket="vc-recordings", Key=dest["Key"])["Body"].read())
        said = tools.tone_levels(wav, freqs=(440, 600))
        assert 2.5 <= said["seconds"] <= 3.5, said
        assert said[440] > TONE_MIN_DB and said["present"][440] > 0.8, said

        failed = [e for e in hook.events if e["InvocationEventType"] == "ACTION_FAILED"]
        assert failed, hook.kinds()
        message = failed[0]["ActionData"]["ErrorMessage"]
        assert "ivr/missing.wav" in message and "not found" in message, failed[0]
    finally:
        if hook is not None:
            hook.close()
        moto.close()
