"""Graceful drain and crash safety of call records (issue #14, M2).

SIGTERM stops new calls (503 with Retry-After and a Warning); calls still up after
--drain-timeout get a BYE with `Reason: SIP;cause=503;text="server shutting down"`; their
records are stored before the process exits. A call's record is written when it is
answered, so a server killed outright (SIGKILL) still leaves one, found after a restart."""

from __future__ import annotations

import re
import signal
import threading
import time

from vctest.server import serve

CALLER = "+12065550100"
DRAIN_S = 3


def join_keys(host: str, token: str, rtp_port: int) -> dict[str, str]:
    return {"vc_host": host, "token": token, "from_user": CALLER, "rtp_port": str(rtp_port)}


def open_record(server, meeting_id: str, timeout: float = 10.0) -> dict:
    """Waits for the meeting's open (InProgress) record: the call was answered."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        recs = server.call_records(meeting_id=meeting_id)
        if recs:
            return recs[0]
        time.sleep(0.1)
    raise AssertionError(f"no record of the answered call in {timeout} s:\n{server.log()[-3000:]}")


def test_sigterm_drains_calls_with_bye_and_keeps_their_records(tmp_path, sip_tools):
    work = tmp_path / "vc"
    work.mkdir()
    gen = serve(work, ("--drain-timeout", str(DRAIN_S)), label="sip")
    server = next(gen)
    p = server.provision()
    results: dict = {}
    with sip_tools.RtpPeer() as peer, sip_tools.RtpPeer() as late_peer:
        call = threading.Thread(target=lambda: results.update(a=sip_tools.run_sipp(
            server, "join_until_bye.xml", join_keys(p.host, p.token, peer.port), tmp_path / "a",
            timeout_s=30)))
        (tmp_path / "a").mkdir()
        (tmp_path / "late").mkdir()
        call.start()
        try:
            # Answered: its record exists already, open.
            rec = open_record(server, p.meeting_id)
            assert rec["Status"] == "InProgress" and rec["StatusCode"] == 200, rec
            assert rec["EndTime"] == "" and rec["AttendeeId"] == p.attendee_id, rec

            stopped_at = time.monotonic()
            server.proc.send_signal(signal.SIGTERM)
            server.wait_for_log(r"draining: new calls get 503", 10)
            # A new call during the drain: 503, a Warning saying why, and Retry-After.
            meeting2, _, token2 = server.create_attendee()
            late = sip_tools.run_sipp(server, "join_refused_503.xml", join_keys(p.host, token2, late_peer.port),
                                      tmp_path / "late")
            assert late.returncode == 0, late.describe()
            m = re.search(r"^warning=(.*) retry_after=(\d+)$", late.log, re.M)
            assert m, late.describe()
            assert "shutting down" in m.group(1) and int(m.group(2)) > 0, late.log
        finally:
            call.join(timeout=40)
        # The live call got its drain time, then our BYE with the Reason.
        a = results.get("a")
        assert a is not None, "the call's SIPp did not finish"
        assert a.returncode == 0, a.describe()
        reason = re.search(r"^reason=\s*(.*) text=(.*)$", a.log, re.M)
        assert reason, a.describe()
        assert re.fullmatch(r'SIP\s*;\s*cause=503\s*;\s*text="server shutting down"', reason.group(1).strip()), a.log
        assert server.proc.wait(timeout=30) == 0, server.log()[-3000:]
        took = time.monotonic() - stopped_at
        assert took >= DRAIN_S - 0.5, f"the call was hung up {took:.1f} s after SIGTERM, before its drain time"
    gen.close()

    # After a restart on the same data, the record is there, finished.
    again = serve(work, label="sip")
    server2 = next(again)
    try:
        [rec] = server2.call_records(meeting_id=p.meeting_id)
        assert (rec["Status"], rec["StatusCode"], rec["Reason"]) == ("Completed", 200, "LocalBye"), rec
        assert rec["EndTime"] >= rec["StartTime"], rec
        assert server2.call_records(meeting_id=meeting2) == [], "a refused drain-time call left a record"
    finally:
        again.close()


def test_a_killed_server_still_leaves_the_answered_calls_record(tmp_path, sip_tools):
    work = tmp_path / "vc"
    work.mkdir()
    gen = serve(work, label="sip")
    server = next(gen)
    p = server.provision()
    (tmp_path / "a").mkdir()
    with sip_tools.RtpPeer() as peer:
        call = threading.Thread(target=lambda: sip_tools.run_sipp(
            server, "join_until_bye.xml", join_keys(p.host, p.token, peer.port), tmp_path / "a", timeout_s=8))
        call.start()
        try:
            open_record(server, p.meeting_id)
            server.proc.send_signal(signal.SIGKILL)
            server.proc.wait(timeout=10)
        finally:
            call.join(timeout=20)
    gen.close()

    again = serve(work, label="sip")
    server2 = next(again)
    try:
        [rec] = server2.call_records(meeting_id=p.meeting_id)
        assert rec["Status"] == "InProgress" and rec["AttendeeId"] == p.attendee_id, rec
        assert rec["SourcePhoneNumber"] == CALLER and rec["CallId"], rec
    finally:
        again.close()
