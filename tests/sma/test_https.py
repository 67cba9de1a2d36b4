"""https for SIP media application functions and the S3-compatible store (issue 13): the
test's function is served over https with a certificate the test makes (the openssl CLI)
and signed by a CA the server trusts through `serve --sma-ca-file`; moto's S3 server
serves https with a certificate of the same CA. A call reaches the function, which plays a
prompt read from that S3 and hangs up; the same function registered `--style invoke`
answers too. Functions whose certificate is not trusted, or names another host, fail their
calls (480) with a log line that names the certificate problem; a prompt from an S3 server
whose certificate is not trusted fails its action with an ErrorMessage that says so.
"""

from __future__ import annotations

import subprocess

from flowlab import (
    ARN, PHONE_HOST, Certificate, HttpsWebhook, Moto, actions, add_function, add_numbers, phone,
    rule_for_number, s3, tone_wav,
)
from vctest.server import find_binary

DIAL_IN = "+12065550181"
DIAL_IN_INVOKE = "+12065550182"
DIAL_IN_S3 = "+12065550183"
ARN_INVOKE = "arn:aws:lambda:us-east-1:123456789012:function:https-invoke"
TONE_MIN_DB = -30.0


def add_invoke_function(data_dir, arn: str, url: str) -> None:
    """`admin functions add ARN URL --style invoke`."""
    cmd = [str(find_binary()), "admin", "functions", "add", arn, url, "--style", "invoke",
           "--data-dir", str(data_dir)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"{' '.join(cmd)}: {proc.stdout}{proc.stderr}"


def phone_carrier(lab, tools) -> None:
    lab.add_carrier("phone-co", f"{PHONE_HOST}:{tools.free_udp_port(PHONE_HOST)}", 1, "PCMU",
                    "--source", f"{PHONE_HOST}/32")


def test_https_function_and_https_s3(pstn_lab, pstn_tools, tmp_path):
    lab, tools = pstn_lab, pstn_tools
    hook_cert = Certificate(tmp_path / "certs", "hook", "IP:127.0.0.1,DNS:localhost")
    s3_cert = Certificate(tmp_path / "certs", "s3", "IP:127.0.0.1", ca=hook_cert)
    moto = Moto(tmp_path / "moto.log", tls=s3_cert)
    hook = None
    try:
        assert moto.url.startswith("https://")
        moto.s3.create_bucket(Bucket="vc-prompts")
        prompt = tone_wav(tmp_path / "welcome.wav", 600, 1.0)
        moto.s3.put_object(Bucket="vc-prompts", Key="ivr/welcome.wav", Body=prompt.read_bytes())

        def app(event: dict):
            kind = event["InvocationEventType"]
            to = event["CallDetails"]["Participants"][0]["To"]
            if kind == "NEW_INBOUND_CALL" and to == DIAL_IN_INVOKE:
                return actions({"Type": "Hangup", "Parameters": {"SipResponseCode": "486"}})
            if kind == "NEW_INBOUND_CALL":
                return actions(
                    {"Type": "PlayAudio", "Parameters": {"AudioSource": s3("vc-prompts", "ivr/welcome.wav")}})
            if kind in ("ACTION_SUCCESSFUL", "ACTION_FAILED"):
                return actions({"Type": "Hangup", "Parameters": {"SipResponseCode": "0"}})
            return actions()

        hook = HttpsWebhook(app, hook_cert)
        assert hook.url.startswith("https://")
        phone_carrier(lab, tools)
        binary = find_binary()
        add_function(binary, lab.data_dir, ARN, hook.url)
        add_invoke_function(lab.data_dir, ARN_INVOKE, f"https://localhost:{hook.port}/")
        add_numbers(binary, lab.data_dir, DIAL_IN, DIAL_IN_INVOKE)
        server = lab.start_server(extra=(*moto.server_flags(), "--sma-ca-file", str(hook_cert.ca)))
        voice = server.client("chime-sdk-voice")
        rule_for_number(voice, DIAL_IN)
        rule_for_number(voice, DIAL_IN_INVOKE, ARN_INVOKE)

        heard = tmp_path / "phone.wav"
        run = phone(lab, DIAL_IN, record=heard, duration=8.0).result()
        hook.wait_for("HANGUP")
        assert run["confirmed"], (run, server.log()[-3000:])
        played = [e for e in hook.events if (e.get("ActionData") or {}).get("Type") == "PlayAudio"]
        assert played and played[0]["InvocationEventType"] == "ACTION_SUCCESSFUL", (
            hook.events, server.log()[-3000:])
        levels = tools.tone_levels(heard, freqs=(600,), window=(0.1, 0.9))
        assert levels[600] > TONE_MIN_DB, f"the phone did not hear the prompt from https S3: {levels}"

        # The Lambda Invoke API over https, to a host name (localhost) this time.
        seen = len(hook.events)
        run = phone(lab, DIAL_IN_INVOKE, name="invoke", duration=2.0).result()
        assert run["status"] == 486 and not run["confirmed"], (run, server.log()[-3000:])
        assert "NEW_INBOUND_CALL" in hook.kinds()[seen:], hook.kinds()
        assert not hook.errors, hook.errors
    finally:
        if hook is not None:
            hook.close()
        moto.close()


def test_untrusted_or_misnamed_certificate_fails_the_call(pstn_lab, pstn_tools, tmp_path):
    lab, tools = pstn_lab, pstn_tools
    trusted = Certificate(tmp_path / "certs", "trusted", "IP:127.0.0.1")
    stranger = Certificate(tmp_path / "certs", "stranger", "IP:127.0.0.1,DNS:localhost")
    misnamed = Certificate(tmp_path / "certs", "misnamed", "DNS:hook.elsewhere.example", ca=trusted)
    stranger_s3 = Certificate(tmp_path / "certs", "stranger-s3", "IP:127.0.0.1", ca=stranger)

    def app(event: dict):
        return actions({"Type": "Hangup", "Parameters": {"SipResponseCode": "486"}})

    def prompt_app(event: dict):
        if event["InvocationEventType"] == "NEW_INBOUND_CALL":
            return actions({"Type": "PlayAudio", "Parameters": {"AudioSource": s3("vc-prompts", "hi.wav")}})
        if event["InvocationEventType"] == "ACTION_FAILED":
            return actions({"Type": "Hangup", "Parameters": {"SipResponseCode": "0"}})
        return actions()

    moto = Moto(tmp_path / "moto.log", tls=stranger_s3)
    hooks = [HttpsWebhook(app, stranger), HttpsWebhook(app, misnamed)]
    prompt_hook = HttpsWebhook(prompt_app, trusted)
    arn_misnamed = "arn:aws:lambda:us-east-1:123456789012:function:misnamed"
    arn_prompt = "arn:aws:lambda:us-east-1:123456789012:function:prompt"
    numbers = (DIAL_IN, DIAL_IN_INVOKE, DIAL_IN_S3)
    try:
        moto.s3.create_bucket(Bucket="vc-prompts")
        moto.s3.put_object(Bucket="vc-prompts", Key="hi.wav",
                           Body=tone_wav(tmp_path / "hi.wav", 600, 0.5).read_bytes())
        phone_carrier(lab, tools)
        binary = find_binary()
        add_function(binary, lab.data_dir, ARN, hooks[0].url)
        add_function(binary, lab.data_dir, arn_misnamed, hooks[1].url)
        add_function(binary, lab.data_dir, arn_prompt, prompt_hook.url)
        add_numbers(binary, lab.data_dir, *numbers)
        server = lab.start_server(extra=(*moto.server_flags(), "--sma-ca-file", str(trusted.ca)))
        voice = server.client("chime-sdk-voice")
        rule_for_number(voice, DIAL_IN, ARN)
        rule_for_number(voice, DIAL_IN_INVOKE, arn_misnamed)
        rule_for_number(voice, DIAL_IN_S3, arn_prompt)

        for number, hook, cause in [
            (DIAL_IN, hooks[0], "certificate not trusted"),
            (DIAL_IN_INVOKE, hooks[1], "certificate name mismatch"),
        ]:
            run = phone(lab, number, name=f"call{number[-1]}", duration=2.0).result()
            assert run["status"] == 480 and not run["confirmed"], (run, server.log()[-3000:])
            assert hook.events == [], "no event went over a refused connection"
            lines = [ln for ln in server.log().splitlines() if "could not be invoked" in ln and cause in ln]
            assert lines, (cause, server.log()[-3000:])
        mismatch = [ln for ln in server.log().splitlines() if "certificate name mismatch" in ln][0]
        assert "hook.elsewhere.example" in mismatch and "127.0.0.1" in mismatch, mismatch

        # The function is trusted, the S3 server is not: the prompt's action fails, saying why.
        run = phone(lab, DIAL_IN_S3, name="s3call", duration=4.0).result()
        prompt_hook.wait_for("HANGUP")
        failed = prompt_hook.wait_for("ACTION_FAILED")
        message = failed["ActionData"]["ErrorMessage"]
        assert "s3://vc-prompts/hi.wav" in message and "certificate not trusted" in message, failed
        assert run["confirmed"], run
    finally:
        for h in (*hooks, prompt_hook):
            h.close()
        moto.close()
