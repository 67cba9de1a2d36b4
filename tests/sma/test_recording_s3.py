"""Prompts and recordings in an S3-compatible server (issue 13): moto's server runs beside
the voice connector (`serve --s3-endpoint`); the function's PlayAudio reads its prompt
from a bucket there, and its RecordAudio writes what the caller said to another bucket, as
a WAV the test downloads and analyses; a prompt that is not there fails the action with an
error that names it.
"""

from __future__ import annotations

import subprocess
import time
import wave

from flowlab import ARN, PHONE_HOST, Moto, Webhook, actions, add_function, add_numbers, phone, rule_for_number, s3, tone_wav
from vctest.server import find_binary

DIAL_IN = "+12065550177"
TONE_MIN_DB = -30.0


def start_lab(lab, tools, hook, moto):
    """A phone carrier, the webhook as the function of a rule for DIAL_IN, and the server
    with moto's S3 endpoint."""
    binary = find_binary()
    lab.add_carrier("phone-co", f"{PHONE_HOST}:{tools.free_udp_port(PHONE_HOST)}", 1, "PCMU",
                    "--source", f"{PHONE_HOST}/32")
    add_function(binary, lab.data_dir, ARN, hook.url)
    add_numbers(binary, lab.data_dir, DIAL_IN)
    server = lab.start_server(extra=moto.server_flags())
    rule_for_number(server.client("chime-sdk-voice"), DIAL_IN)
    return server


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

        hook = Webhook(app)
        server = start_lab(lab, tools, hook, moto)

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


def channel(path, n: int, out):
    """One channel of a WAV file, as a mono WAV (sox's remix)."""
    subprocess.run(["sox", str(path), str(out), "remix", str(n)], check=True, timeout=30)
    return out


def test_call_recording_both_tracks_paused_and_delivered(pstn_lab, pstn_tools, tmp_path):
    """StartCallRecording of BOTH tracks: the caller's tone (440 Hz) on the left channel and
    the prompt it hears (600 Hz) on the right; a paused stretch is silence between two
    marker tones; StopCallRecording delivers the file where ACTION_SUCCESSFUL said; a second
    start on the same leg fails, naming why."""
    lab, tools = pstn_lab, pstn_tools
    moto = Moto(tmp_path / "moto.log")
    hook = None
    try:
        moto.s3.create_bucket(Bucket="vc-prompts")
        moto.s3.create_bucket(Bucket="vc-calls")
        prompt = tone_wav(tmp_path / "music.wav", 600, 2.0)
        moto.s3.put_object(Bucket="vc-prompts", Key="music.wav", Body=prompt.read_bytes())
        start = {"Type": "StartCallRecording", "Parameters": {
            "Track": "BOTH", "Destination": {"Type": "S3", "Location": "vc-calls/support/"}}}

        def app(event: dict):
            kind = event["InvocationEventType"]
            data = event.get("ActionData") or {}
            call_id = event["CallDetails"]["Participants"][0]["CallId"]
            start["Parameters"]["CallId"] = call_id
            ours = {"CallId": call_id}
            if kind == "NEW_INBOUND_CALL":
                return actions(start)
            if kind == "ACTION_SUCCESSFUL" and data.get("Type") == "StartCallRecording":
                return actions(
                    {"Type": "PlayAudio", "Parameters": {"AudioSource": s3("vc-prompts", "music.wav")}},
                    {"Type": "PauseCallRecording", "Parameters": ours},
                    {"Type": "Pause", "Parameters": {"DurationInMilliseconds": "1500"}},
                    {"Type": "ResumeCallRecording", "Parameters": ours},
                    {"Type": "Pause", "Parameters": {"DurationInMilliseconds": "1000"}},
                    {"Type": "StopCallRecording", "Parameters": ours},
                    start)
            if kind == "ACTION_FAILED":
                return actions({"Type": "Hangup", "Parameters": {"SipResponseCode": "0"}})
            return actions()

        hook = Webhook(app)
        server = start_lab(lab, tools, hook, moto)

        run = phone(lab, DIAL_IN, play=lab.tones[440], duration=15.0).result()
        hook.wait_for("HANGUP")
        assert run["confirmed"], (run, server.log()[-3000:])

        started = [e for e in hook.events if (e.get("ActionData") or {}).get("Type") == "StartCallRecording"]
        assert started[0]["InvocationEventType"] == "ACTION_SUCCESSFUL", hook.kinds()
        dest = started[0]["ActionData"]["CallRecordingDestination"]
        assert dest["Type"] == "S3" and dest["Location"].startswith("vc-calls/support/"), dest
        key = dest["Location"].removeprefix("vc-calls/")
        tx = started[0]["CallDetails"]["TransactionId"]
        assert key.endswith(f"_{tx}_{start['Parameters']['CallId']}.wav"), key
        # The second start on the leg is refused, with the reason.
        assert started[1]["InvocationEventType"] == "ACTION_FAILED", hook.kinds()
        assert "once" in started[1]["ActionData"]["ErrorMessage"], started[1]

        deadline = time.monotonic() + 10
        while True:
            listed = [o["Key"] for o in moto.s3.list_objects_v2(Bucket="vc-calls").get("Contents", [])]
            if listed or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert listed == [key], listed
        wav = tmp_path / "call.wav"
        wav.write_bytes(moto.s3.get_object(Bucket="vc-calls", Key=key)["Body"].read())
        with wave.open(str(wav)) as w:
            assert w.getnchannels() == 2, w.getparams()
            seconds = w.getnframes() / w.getframerate()
        # 2 s of prompt, 1.5 s paused, 1 s after: about 4.5 s with the two 0.2 s marks.
        assert 4.0 <= seconds <= 5.5, seconds
        left = tools.tone_levels(channel(wav, 1, tmp_path / "left.wav"), freqs=(440, 600), window=(0.2, 1.8))
        right = tools.tone_levels(channel(wav, 2, tmp_path / "right.wav"), freqs=(440, 600), window=(0.2, 1.8))
        assert left[440] > TONE_MIN_DB and left[440] > left[600] + 15, left
        assert right[600] > TONE_MIN_DB and right[600] > right[440] + 15, right
        # The pause: silence in both channels after the first mark (from about 2.2 s).
        paused = tools.tone_levels(channel(wav, 1, tmp_path / "paused.wav"), freqs=(440,), window=(2.4, 3.4))
        assert paused["rms_dbfs"] < -60, paused
        after = tools.tone_levels(channel(wav, 1, tmp_path / "after.wav"), freqs=(440,), window=(3.9, 4.4))
        assert after[440] > TONE_MIN_DB, after
    finally:
        if hook is not None:
            hook.close()
        moto.close()
