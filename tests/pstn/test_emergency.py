"""Emergency calls through a voice connector (issue 18). A PBX dials its country's emergency
number (911 in the US) or test number (933); the server sends the call on to the routing
provider's number of the connector's EmergencyCallingConfiguration (its DNIS for the
caller's country), and only through carriers the operator marked with `admin carriers add
--emergency`. A call the configuration does not cover is refused 503 with a Warning saying
what to configure, and never reaches an ordinary carrier.

The PBX is pjsua2 (`caller.py`) for calls that connect and SIPp for refused ones; carriers
are SIPp UASes on 127.0.0.2 and up that log each INVITE's Request-URI."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _limits_helpers():
    """test_carrier_limits.py as a plain module: its refused-call runner and wait_for."""
    spec = importlib.util.spec_from_file_location("pstn_limits_helpers", HERE / "test_carrier_limits.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


limits = _limits_helpers()
DNIS = {"EmergencyPhoneNumber": "+12025550911", "TestPhoneNumber": "+12025550933", "CallingCountry": "US"}


def invited_numbers(uas) -> list[str]:
    """The Request-URI users of the INVITEs a uas_answer.xml carrier logged."""
    text = uas.log_file.read_text(errors="replace") if uas.log_file.exists() else ""
    return re.findall(r"^invite ruri=sip:([^@;>]+)@", text, re.M)


def put_emergency(server, vc_id: str, dnis: dict) -> None:
    voice = server.client("chime-sdk-voice")
    voice.put_voice_connector_emergency_calling_configuration(
        VoiceConnectorId=vc_id, EmergencyCallingConfiguration={"DNIS": [dnis]})


def test_an_emergency_call_reaches_the_dnis_through_the_emergency_carrier_only(pstn_lab, pstn_tools):
    """911 from a US caller goes to the US DNIS's EmergencyPhoneNumber, 933 to its
    TestPhoneNumber, both through e911 (marked, priority 9) and never through c1 (priority
    1), which still takes the ordinary call. The connector's CallingRegions do not list the
    short codes and need not."""
    lab, tools = pstn_lab, pstn_tools
    c1 = lab.sipp_uas("c1", "uas_answer.xml", "127.0.0.2")
    e911 = lab.sipp_uas("e911", "uas_answer.xml", "127.0.0.3")
    lab.add_carrier("c1", c1.address, 1, "PCMU")
    out = lab.add_carrier("e911", e911.address, 9, "PCMU", "--emergency")
    assert "e911" in out, out
    server = lab.start_server()
    vc_id, host = lab.connector(require_encryption=False)
    put_emergency(server, vc_id, DNIS)

    for dialled, name in (("911", "pbx911"), ("933", "pbx933"), (tools.number, "pbx-ordinary")):
        r = lab.pbx(host, "udp", codecs=("PCMU/8000",), duration=1.0, name=name, number=dialled).result()
        assert r["error"] == "" and r["confirmed"], f"{dialled}: {r['status']} {r['reason']} ({r['log_file']})"

    limits.wait_for("three INVITEs logged", lambda: len(invited_numbers(e911)) + len(invited_numbers(c1)) >= 3,
                    10, lambda: e911.describe() + c1.describe())
    assert invited_numbers(e911) == ["+12025550911", "+12025550933"], e911.describe()
    assert invited_numbers(c1) == [tools.number], c1.describe()
    server.wait_for_log(r"emergency call.*dialled=911", timeout=5)
    c1.stop()
    e911.stop()


def test_emergency_calls_that_cannot_be_routed_are_refused_saying_why(pstn_lab, pstn_tools, tmp_path):
    """Without a configuration, with one but no carrier marked for emergency calls, and a
    test call without a TestPhoneNumber: each refused 503 (so the PBX tries its next route
    at once) with a Warning naming what to configure; the ordinary carrier gets nothing."""
    lab, tools = pstn_lab, pstn_tools
    c1 = lab.sipp_uas("c1", "uas_answer.xml", "127.0.0.2")
    lab.add_carrier("c1", c1.address, 1, "PCMU")
    server = lab.start_server()
    vc_id, host = lab.connector(require_encryption=False)

    def refused(dialled: str, name: str) -> tuple[str, str, str]:
        run = limits.orig.run_uac(tools, tmp_path, name, "carrier_uac_refused.xml", server.sip_port, dialled,
                                  source="127.0.0.1", keys={"host": host}, timeout=30)
        results = [limits.REFUSED.fullmatch(ln) for ln in run.log_lines if ln.startswith("refused ")]
        assert len(results) == 1 and all(results), run.describe()
        return results[0].groups()

    status, warning, retry_after = refused("911", "unconfigured")
    assert status == "503" and not retry_after, (status, warning)
    assert "no EmergencyCallingConfiguration DNIS for US" in warning, warning
    assert "PutVoiceConnectorEmergencyCallingConfiguration" in warning, warning

    put_emergency(server, vc_id, {k: v for k, v in DNIS.items() if k != "TestPhoneNumber"})
    status, warning, _ = refused("911", "no-carrier")
    assert status == "503", (status, warning)
    assert "no carrier marked for emergency calls serves +12025550911" in warning, warning
    assert "--emergency" in warning, warning

    status, warning, _ = refused("933", "no-test-number")
    assert status == "503" and "has no TestPhoneNumber" in warning, (status, warning)

    assert invited_numbers(c1) == [], c1.describe()
    c1.stop()

