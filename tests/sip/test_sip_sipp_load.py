"""SIPp load against the real voice-connector binary (GitHub issue 5): 1,000 meeting joins,
each with its own join token, and afterwards nothing is left behind: no active leg, no RTP
port held, every RTP port pair usable again. Runs on a server of its own (shared by the
tests of this module), so the global state it checks is this load's alone.
"""

from __future__ import annotations

import re
from collections import Counter
from types import SimpleNamespace

import pytest

#: E.164 caller id for From.
CALLER = "+12065550100"

#: Joins, their rate (calls per second, SIPp -r), how long each stays up (SIPp -d, ms).
CALLS = 1000
RATE = 50
HOLD_MS = 200


def _inf(path, host: str, attendees: list[tuple[str, str, str]]):
    """A SIPp injection file (-inf, SEQUENTIAL): one `host;token;` line per call."""
    path.write_text("SEQUENTIAL\n" + "".join(f"{host};{token};\n" for _, _, token in attendees))
    return path


@pytest.fixture(scope="module")
def loaded(sip_module_server, sip_tools, tmp_path_factory):
    """The module's server after 1,000 joins at RATE calls/s, each held HOLD_MS."""
    server = sip_module_server
    tmp = tmp_path_factory.mktemp("sip-load")
    vc_id, host = server.create_connector()
    # Above every rate used here, so that no join meets the CpsLimit.
    server.put_termination(vc_id, CpsLimit=1000)
    # 1,000 attendees over four meetings (250 each, the service's limit), created with
    # BatchCreateAttendee in chunks of 100; the calls take them round robin, so every
    # meeting has several legs at once.
    attendees = server.create_attendees(CALLS)
    meetings = sorted({m for m, _, _ in attendees})
    by_meeting = [[a for a in attendees if a[0] == m] for m in meetings]
    order = [group[i] for i in range(max(map(len, by_meeting))) for group in by_meeting if i < len(group)]
    with sip_tools.RtpPeer() as peer:
        keys = {"from_user": CALLER, "rtp_port": str(peer.port)}
        extra = ["-inf", str(_inf(tmp / "joins.csv", host, order)), "-m", str(CALLS), "-r", str(RATE),
                 "-l", str(4 * RATE), "-d", str(HOLD_MS)]
        result = sip_tools.run_sipp(server, "join_uac_inf.xml", keys, tmp, extra=extra, timeout_s=90)
    return SimpleNamespace(server=server, vc_id=vc_id, host=host, meetings=meetings, order=order, result=result,
                           tmp=tmp)


def test_thousand_joins_leave_nothing_behind(loaded):
    server, result = loaded.server, loaded.result
    assert len(loaded.meetings) == 4, loaded.meetings
    assert len({token for _, _, token in loaded.order}) == CALLS
    assert result.returncode == 0, result.describe()
    assert result.counter("SuccessfulCall") == CALLS, result.describe()
    assert result.counter("FailedCall") == 0, result.describe()
    assert len(re.findall(r"^answer port=\d+ pt=0$", result.log, re.M)) == CALLS

    # Every call ended by its BYE, and the server is back to idle: the vc_active_legs gauge
    # at 0 and no UDP socket of its own left in the --rtp-ports range.
    legs, held = server.wait_media_idle(timeout=15)
    assert legs == 0, server.log()[-3000:]
    assert held == set(), (sorted(held), server.rtp_ports)
    records = server.wait_call_records(loaded.vc_id, CALLS)
    reasons = Counter((r["Status"], r.get("Reason")) for r in records)
    assert reasons == {("Completed", "RemoteBye"): CALLS}, reasons
    assert {r["AttendeeId"] for r in records} == {a for _, a, _ in loaded.order}
    joined = Counter(re.findall(r"joined meeting [^\n]*meeting=(\S+)", server.log()))
    assert joined == {m: CALLS // 4 for m in loaded.meetings}, joined
    metrics = server.metrics()
    assert metrics.get("vc_calls_answered_total") == CALLS, {k: v for k, v in metrics.items() if k.startswith("vc_")}


def test_rtp_pool_keeps_every_pair_after_load(loaded, sip_tools):
    """After the load, as many calls at once as the range has RTP/RTCP pairs all get a
    port: no pair was lost. (The range lies below the ephemeral ports, so no other socket
    of this test run can have taken one of its ports.)"""
    server = loaded.server
    low, high = server.rtp_ports
    pairs = len(range(low + low % 2, high, 2))
    skipped = re.findall(r"RTP port pair is in use by another program; skipping it port=(\d+)", server.log())
    attendees = server.create_attendees(pairs)
    extra = ["-inf", str(_inf(loaded.tmp / "probe.csv", loaded.host, attendees)), "-m", str(pairs),
             "-r", str(2 * pairs), "-l", str(pairs), "-d", "3000"]
    # No RTP peer: nothing needs to flow for a port to be taken.
    probe = sip_tools.run_sipp(server, "join_uac_inf.xml", {"from_user": CALLER, "rtp_port": "9"},
                               loaded.tmp, extra=extra, timeout_s=60, tag="probe")
    assert probe.counter("SuccessfulCall") == pairs, (skipped, probe.describe())
    assert skipped == [], skipped
    legs, held = server.wait_media_idle(timeout=15)
    assert (legs, held) == (0, set()), (legs, sorted(held))
