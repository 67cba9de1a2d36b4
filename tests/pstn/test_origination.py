"""PSTN origination (issue 12): a carrier's INVITE for a number in the inventory goes to the
number's voice connector (or its group's members, by priority) and out through the
connector's origination routes to the customer's PBX: lowest Priority first, Weight
splitting equal priorities, the next route on 408/5xx, `X-VoiceConnector-ID` added.

The carrier is SIPp (`scenarios/carrier_uac.xml`) from its source address 127.0.0.2, or
pjsua2 (`tests/pjsua2/caller.py`, which binds 127.0.0.1 only) for the tones; the PBXs are
SIPp UASes (`scenarios/pbx_uas_*.xml`, which fail a call whose INVITE lacks
`X-VoiceConnector-ID`) or `callee.py` (pjsua2) on 127.0.0.3 and up. Refusals come back to
`scenarios/carrier_uac_refused.xml`, which logs each status, Warning and Retry-After.
"""

from __future__ import annotations

import csv
import re
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from vctest.server import find_binary

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
CARRIER_HOST = "127.0.0.2"
#: Calls of the weighted-split test, and their rate (calls/s): about 20 s. The share of
#: the weight-1 route must be within 5 points of 25%: with 400 calls that is 2.3 standard
#: deviations (sqrt(.25 * .75 / n)), so a correct draw would fail about 1 run in 50; with
#: 800 it is 3.3 (about 1 in 1000).
SPLIT_CALLS = 800
SPLIT_RATE = 40
#: The other side's tone must be this loud (dB re full scale) in this share of 100 ms blocks.
TONE_MIN_DB = -30.0
TONE_PRESENT = 0.8


@dataclass
class SippRun:
    """A finished SIPp UAC run: exit code (0: every call succeeded), its -log_file lines,
    the final SuccessfulCall/FailedCall counters of its -trace_stat file and its errors."""

    returncode: int
    log_lines: list[str]
    successful: int
    failed: int
    errors: str
    out: str

    def describe(self) -> str:
        return (f"sipp exited {self.returncode}, {self.successful} ok / {self.failed} failed\n"
                f"{self.out[-2000:]}\nerrors:\n{self.errors[-3000:]}")


def run_uac(tools, tmp_path: Path, name: str, scenario: str, server_port: int, number: str, *,
            source: str = CARRIER_HOST, port: int = 0, calls: int = 1, rate: int = 10,
            pause_ms: int = 100, keys: dict[str, str] | None = None, timeout: float = 120.0) -> SippRun:
    """Runs a SIPp UAC scenario from `source`:`port` against the server (127.0.0.1) for
    `calls` calls at `rate` calls/s, dialling `number` (-s), and waits for it to end."""
    tmp_path = tmp_path.resolve()
    log_file, stat_file = tmp_path / f"{name}.log", tmp_path / f"{name}.stat.csv"
    err_file, out_file = tmp_path / f"{name}.errors", tmp_path / f"{name}.out"
    port = port or tools.free_udp_port(source)
    cmd = [
        "sipp", f"127.0.0.1:{server_port}", "-sf", str(SCENARIOS / scenario), "-t", "u1",
        "-i", source, "-p", str(port), "-mi", source, "-mp", str(tools.free_udp_port(source)),
        "-s", number, "-m", str(calls), "-r", str(rate), "-l", str(max(10, rate * 3)),
        "-d", str(pause_ms), "-aa", "-nostdin", "-timeout", f"{int(timeout)}s", "-recv_timeout", "15000",
        "-trace_logs", "-log_file", str(log_file), "-trace_err", "-error_file", str(err_file),
        "-trace_stat", "-stf", str(stat_file), "-fd", "1",
        "-trace_msg", "-message_file", str(tmp_path / f"{name}.messages"),
    ]
    for k, v in (keys or {}).items():
        cmd += ["-key", k, v]
    with open(out_file, "wb") as out:
        proc = subprocess.run(cmd, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, timeout=timeout + 30)
    successful = failed = -1
    if stat_file.exists():
        rows = list(csv.reader(stat_file.read_text(errors="replace").splitlines(), delimiter=";"))
        if len(rows) >= 2:
            head, last = rows[0], rows[-1]
            successful = int(last[head.index("SuccessfulCall(C)")])
            failed = int(last[head.index("FailedCall(C)")])
    return SippRun(proc.returncode, _text(log_file).splitlines(), successful, failed, _text(err_file), _text(out_file))


def _text(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def invites_logged(uas) -> list[str]:
    """The `X-VoiceConnector-ID` values a pbx_uas_* scenario logged, one per INVITE."""
    text = uas.log_file.read_text(errors="replace") if uas.log_file.exists() else ""
    return re.findall(r"^invite vcid=(\S*) ruri=", text, re.M)


def answered_call_ids(uas, tools) -> set[str]:
    """Call-IDs of the INVITEs a SIPp UAS answered 200 OK."""
    return {
        tools.header(m.text, "Call-ID") for m in uas.messages()
        if not m.received and m.text.startswith("SIP/2.0 200 ") and tools.header(m.text, "CSeq").endswith("INVITE")
    }


def add_numbers(lab, *numbers: str) -> None:
    """`voice-connector admin add-numbers` on the lab's data directory."""
    lab.data_dir.mkdir(parents=True, exist_ok=True)
    cmd = [str(find_binary()), "admin", "add-numbers", *numbers, "--data-dir", str(lab.data_dir)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"{' '.join(cmd)}: {proc.stdout}{proc.stderr}"


def add_carrier(lab, address: str, source: str = CARRIER_HOST + "/32") -> None:
    """The carrier `telco` (PSTN calls come from `source`), reached at `address`."""
    lab.add_carrier("telco", address, 1, "PCMU", "--source", source)


def connector(server, routes: list[tuple[str, int, int]] | None, disabled: bool = False) -> str:
    """A voice connector (no termination) with origination routes [(host:port, priority,
    weight)] (none: no origination put); its id."""
    voice = server.client("chime-sdk-voice")
    vc_id = voice.create_voice_connector(Name="orig-" + uuid.uuid4().hex[:10],
                                         RequireEncryption=False)["VoiceConnector"]["VoiceConnectorId"]
    if routes is not None:
        voice.put_voice_connector_origination(VoiceConnectorId=vc_id, Origination={
            "Routes": [
                {"Host": addr.rsplit(":", 1)[0], "Port": int(addr.rsplit(":", 1)[1]), "Protocol": "UDP",
                 "Priority": prio, "Weight": weight}
                for addr, prio, weight in routes
            ],
            "Disabled": disabled,
        })
    return vc_id


def associate(server, vc_id: str, number: str) -> None:
    resp = server.client("chime-sdk-voice").associate_phone_numbers_with_voice_connector(
        VoiceConnectorId=vc_id, E164PhoneNumbers=[number], ForceAssociate=True)
    assert not resp.get("PhoneNumberErrors"), resp


def inbound_records(server, vc_id: str | None, n: int, timeout: float = 30.0) -> list[dict]:
    """The `n` finished Inbound records (of `vc_id`, or of any connector)."""
    recs = [r for r in server.wait_call_records(vc_id, n, timeout=timeout) if r.get("Direction") == "Inbound"]
    if len(recs) != n:
        every = server.wait_call_records(vc_id, 0, timeout=0, include_open=True)
        by_status: dict[str, int] = {}
        for r in every:
            key = f"{r.get('Direction')}/{r.get('Status')}/{r.get('Reason')}"
            by_status[key] = by_status.get(key, 0) + 1
        unusual = [ln for ln in server.log().splitlines() if " WARN " in ln or "AckTimeout" in ln or "NoMedia" in ln]
        pytest.fail(f"{len(recs)} finished inbound call records, not {n}; all records by "
                    f"direction/status/reason: {by_status}\n" + "\n".join(unusual[-40:]))
    return recs


def attempts(rec: dict) -> list[tuple[str, int]]:
    return [(a["Route"], a["StatusCode"]) for a in rec.get("Attempts", [])]


def test_routes_priority_weight_and_failover(pstn_lab, pstn_tools, tmp_path):
    """Routes {priority 1: a PBX answering 503; priority 2: PBXs weighted 1 and 3}: each of
    800 carrier calls is tried on the 503 route first, then connects to one of the two,
    split about 25/75; every INVITE a PBX got carries the connector's X-VoiceConnector-ID."""
    lab, tools = pstn_lab, pstn_tools
    number = tools.number
    busy = lab.sipp_uas("p503", "pbx_uas_503.xml", "127.0.0.3")
    light = lab.sipp_uas("p4", "pbx_uas_answer.xml", "127.0.0.4")
    heavy = lab.sipp_uas("p5", "pbx_uas_answer.xml", "127.0.0.5")
    uac_port = tools.free_udp_port(CARRIER_HOST)
    add_carrier(lab, f"{CARRIER_HOST}:{uac_port}")
    add_numbers(lab, number)
    server = lab.start_server(answer_timeout=5)
    vc_id = connector(server, [(busy.address, 1, 1), (light.address, 2, 1), (heavy.address, 2, 3)])
    associate(server, vc_id, number)

    run = run_uac(tools, tmp_path, "carrier", "carrier_uac.xml", server.sip_port, number, port=uac_port,
                  calls=SPLIT_CALLS, rate=SPLIT_RATE, pause_ms=100, timeout=150)
    recs = inbound_records(server, vc_id, SPLIT_CALLS)
    for uas in (busy, light, heavy):
        uas.stop()

    assert run.returncode == 0 and run.successful == SPLIT_CALLS and run.failed == 0, run.describe()
    assert len(busy.requests("INVITE")) == SPLIT_CALLS, busy.describe()
    to_light, to_heavy = answered_call_ids(light, tools), answered_call_ids(heavy, tools)
    assert len(to_light) + len(to_heavy) == SPLIT_CALLS and not to_light & to_heavy, (len(to_light), len(to_heavy))
    share = 100.0 * len(to_light) / SPLIT_CALLS
    assert 20.0 <= share <= 30.0, f"weight 1 of 4 took {share:.1f}% of the calls ({len(to_light)}/{SPLIT_CALLS})"
    for uas in (busy, light, heavy):
        logged = invites_logged(uas)
        assert len(logged) == len(uas.requests("INVITE")), f"an INVITE without X-VoiceConnector-ID: {uas.describe()}"
        assert set(logged) <= {vc_id}, f"X-VoiceConnector-ID {set(logged)} is not {vc_id}"
        for inv in uas.requests("INVITE"):
            assert tools.sip_user(inv.text.split(" ", 2)[1]) == number, inv.text
    carriers = {light.address: 0, heavy.address: 0}
    for rec in recs:
        assert rec["VoiceConnectorId"] == vc_id and rec["DestinationPhoneNumber"] == number, rec
        assert rec["Status"] == "Completed", rec
        assert rec.get("Carrier") in carriers, f"Carrier is not the route that answered: {rec}"
        carriers[rec["Carrier"]] += 1
        assert attempts(rec) == [(busy.address, 503), (rec["Carrier"], 200)], f"attempts not listed: {rec}"
    assert carriers == {light.address: len(to_light), heavy.address: len(to_heavy)}, carriers
    print(f"split: {light.address} {len(to_light)} ({share:.1f}%), {heavy.address} {len(to_heavy)}")


def test_group_fails_over_between_members(pstn_lab, pstn_tools, tmp_path):
    """A voice connector group {vc1 priority 1, vc2 priority 2} owns the number; vc1's only
    route answers 503, so the call goes on to vc2's PBX, with vc2's X-VoiceConnector-ID."""
    lab, tools = pstn_lab, pstn_tools
    number = tools.number
    pbx1 = lab.sipp_uas("pbx1", "pbx_uas_503.xml", "127.0.0.3")
    pbx2 = lab.sipp_uas("pbx2", "pbx_uas_answer.xml", "127.0.0.4", rtp_echo=True)
    uac_port = tools.free_udp_port(CARRIER_HOST)
    add_carrier(lab, f"{CARRIER_HOST}:{uac_port}")
    add_numbers(lab, number)
    server = lab.start_server(answer_timeout=5)
    vc1 = connector(server, [(pbx1.address, 1, 1)])
    vc2 = connector(server, [(pbx2.address, 1, 1)])
    voice = server.client("chime-sdk-voice")
    group = voice.create_voice_connector_group(Name="orig-group", VoiceConnectorItems=[
        {"VoiceConnectorId": vc2, "Priority": 2}, {"VoiceConnectorId": vc1, "Priority": 1},
    ])["VoiceConnectorGroup"]
    resp = voice.associate_phone_numbers_with_voice_connector_group(
        VoiceConnectorGroupId=group["VoiceConnectorGroupId"], E164PhoneNumbers=[number], ForceAssociate=True)
    assert not resp.get("PhoneNumberErrors"), resp

    run = run_uac(tools, tmp_path, "carrier", "carrier_uac.xml", server.sip_port, number, port=uac_port,
                  calls=1, pause_ms=1000)
    recs = inbound_records(server, None, 1)
    pbx1.stop()
    pbx2.stop()

    assert run.returncode == 0 and run.successful == 1, run.describe()
    assert invites_logged(pbx1) == [vc1], pbx1.describe()
    assert pbx1.sent_statuses() == [503], pbx1.describe()
    assert invites_logged(pbx2) == [vc2], pbx2.describe()
    assert pbx2.sent_statuses() == [180, 200] and len(pbx2.requests("BYE")) == 1, pbx2.describe()
    assert pbx1.requests("INVITE")[0].at <= pbx2.requests("INVITE")[0].at
    rec = recs[0]
    assert rec["VoiceConnectorId"] == vc2 and rec["Status"] == "Completed", "recorded under the member that took the call: " + str(rec)
    assert rec.get("Carrier") == pbx2.address, rec
    assert attempts(rec) == [(pbx1.address, 503), (pbx2.address, 200)], rec


def refusal(run: SippRun) -> tuple[int, str, str]:
    """(status, Warning text, Retry-After) of a one-call carrier_uac_refused.xml run."""
    lines = [ln for ln in run.log_lines if ln.startswith("refused ")]
    assert run.returncode == 0 and len(lines) == 1, run.describe()
    m = re.fullmatch(r"refused status=(\d+) warning=(.*) retry_after=(\d*)", lines[0])
    assert m, lines[0]
    return int(m.group(1)), m.group(2), m.group(3)


def test_refusals(pstn_lab, pstn_tools, tmp_path):
    """Origination: a number not in the inventory 404, origination disabled 480, a
    connector without origination 503, each with a Warning. Termination: +44 with a US
    calling plan 403; a burst over CpsLimit 1 gets 503 with Retry-After."""
    lab, tools = pstn_lab, pstn_tools
    number, disabled_number, unrouted_number = tools.number, "+14155550101", "+14155550102"
    carrier = lab.sipp_uas("telco", "uas_503.xml", CARRIER_HOST)  # termination: refuses
    add_carrier(lab, carrier.address)
    add_numbers(lab, disabled_number, unrouted_number)
    server = lab.start_server(answer_timeout=3)
    vc_off = connector(server, [("127.0.0.3:5060", 1, 1)], disabled=True)
    associate(server, vc_off, disabled_number)
    vc_none = connector(server, None)
    associate(server, vc_none, unrouted_number)
    host = f"127.0.0.1:{server.sip_port}"

    def call(name, dialled, source=CARRIER_HOST, to=host):
        return refusal(run_uac(tools, tmp_path, name, "carrier_uac_refused.xml", server.sip_port, dialled,
                               source=source, keys={"host": to}, timeout=30))

    status, warning, _ = call("not-ours", number)
    assert status == 404 and number in warning, (status, warning)
    status, warning, _ = call("disabled", disabled_number)
    assert status == 480 and "disabled" in warning and vc_off in warning, (status, warning)
    status, warning, _ = call("no-routes", unrouted_number)
    assert status == 503 and vc_none in warning, (status, warning)

    vc_term, vc_host = server.create_connector(False)
    status, warning, _ = call("plus44", "+442079460000", source="127.0.0.1", to=vc_host)
    assert status == 403 and "CallingRegions" in warning, (status, warning)

    server.put_termination(vc_term, CpsLimit=1)
    burst = run_uac(tools, tmp_path, "burst", "carrier_uac_refused.xml", server.sip_port, number,
                    source="127.0.0.1", calls=5, rate=50, keys={"host": vc_host}, timeout=30)
    results = [re.fullmatch(r"refused status=(\d+) warning=(.*) retry_after=(\d*)", ln)
               for ln in burst.log_lines if ln.startswith("refused ")]
    assert len(results) == 5 and all(results), burst.describe()
    # The window opens with the first call (the +44 call was refused before the CPS check):
    # that one goes on to the carrier (which answers 503), the other four are over CPS.
    over = [m for m in results if "CpsLimit" in m.group(2)]
    assert len(over) == 4, [m.group(0) for m in results]
    for m in over:
        assert m.group(1) == "503" and m.group(3), f"over CPS without 503 + Retry-After: {m.group(0)}"
    carrier.stop()
    assert len(carrier.requests("INVITE")) == 1, carrier.describe()


def test_unknown_source_is_refused_403(pstn_lab, pstn_tools, tmp_path):
    """An INVITE for one of our numbers from a source that is no carrier's, addressed to the
    server's IP rather than a connector's host name: issue 12 asks 403."""
    lab, tools = pstn_lab, pstn_tools
    add_carrier(lab, f"{CARRIER_HOST}:{tools.free_udp_port(CARRIER_HOST)}")
    add_numbers(lab, tools.number)
    server = lab.start_server()
    associate(server, connector(server, [("127.0.0.3:5060", 1, 1)]), tools.number)
    run = run_uac(tools, tmp_path, "stranger", "carrier_uac_refused.xml", server.sip_port, tools.number,
                  source="127.0.0.6", keys={"host": f"127.0.0.1:{server.sip_port}"}, timeout=30)
    status, warning, _ = refusal(run)
    assert status == 403, (status, warning)


def test_tones_origination(pstn_lab, pstn_tools, tmp_path):
    """A pjsua2 carrier (caller.py, which binds 127.0.0.1 only, so the carrier's source is
    127.0.0.1/32 here) calls the number; a pjsua2 PBX (callee.py on 127.0.0.3) answers;
    each hears the other's tone through the server's anchored media."""
    lab, tools = pstn_lab, pstn_tools
    number = tools.number
    carrier_wav, pbx_wav = tmp_path / "carrier.wav", tmp_path / "pbx.wav"
    pbx = lab.callee("pbx", "127.0.0.3", play=lab.tones[1000], record=pbx_wav)
    add_carrier(lab, f"127.0.0.1:{tools.free_udp_port('127.0.0.1')}", source="127.0.0.1/32")
    add_numbers(lab, number)
    server = lab.start_server()
    vc_id = connector(server, [(pbx.address, 1, 1)])
    associate(server, vc_id, number)

    carrier = lab.pbx("127.0.0.1", "udp", codecs=("PCMU/8000",), play=lab.tones[440], record=carrier_wav,
                      duration=5.0, name="carrier").result()
    answered = pbx.stop()

    assert carrier["error"] == "" and carrier["confirmed"], (
        f"{carrier['status']} {carrier['reason']} ({carrier['log_file']})\n{server.log()[-3000:]}")
    inv = answered["invite"]
    assert inv is not None, answered
    assert tools.sip_user(inv["request_uri"]) == number, inv["request_uri"]
    assert tools.header(inv["raw"], "X-VoiceConnector-ID") == vc_id, inv["raw"]
    low, high = server.rtp_ports
    assert low <= tools.media_port(answered["offer_sdp"]) <= high, answered["offer_sdp"]
    for wav, hz, who in ((carrier_wav, 1000, "the carrier"), (pbx_wav, 440, "the PBX")):
        levels = tools.tone_levels(wav)
        assert levels["seconds"] > 1.0, f"{who}: recording too short: {levels}"
        heard = levels[hz] > TONE_MIN_DB and levels["present"][hz] > TONE_PRESENT
        assert heard, f"{who} does not hear {hz} Hz: {levels}"
    rec = inbound_records(server, vc_id, 1)[0]
    assert rec["Status"] == "Completed" and rec["DestinationPhoneNumber"] == number, rec
    assert rec["SourcePhoneNumber"] == tools.caller, rec
    assert rec.get("Carrier") == pbx.address and attempts(rec) == [(pbx.address, 200)], rec
    assert 3 <= rec["BillableDurationSeconds"] <= 10, rec
