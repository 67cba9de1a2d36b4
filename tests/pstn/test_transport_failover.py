"""A carrier over TCP whose port refuses the connection (issue 12): the refused connect is a
transport error for our INVITE's client transaction (RFC 3261 §17.1.4), which ends it at
once as 503, so the next carrier is tried within moments, not after Timer B (32 s)."""

from __future__ import annotations

import socket
import subprocess
import time

from vctest.server import find_binary


def closed_tcp_port(host: str) -> int:
    """A TCP port on `host` with nothing listening (connects are refused at once)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def test_a_refused_tcp_carrier_fails_over_at_once(pstn_lab, pstn_tools):
    lab, tools = pstn_lab, pstn_tools
    dead = f"127.0.0.6:{closed_tcp_port('127.0.0.6')}"
    subprocess.run(
        [str(find_binary()), "admin", "carriers", "add", "c1", "--data-dir", str(lab.data_dir),
         "--address", dead, "--transport", "tcp", "--prefix", "+1", "--priority", "1", "--codecs", "PCMU"],
        check=True, capture_output=True, timeout=60,
    )
    c2 = lab.sipp_uas("c2", "uas_answer.xml", "127.0.0.3")
    lab.add_carrier("c2", c2.address, 2, "PCMU")
    server = lab.start_server()
    vc_id, host = lab.connector(require_encryption=False)
    dialled = time.time()
    pbx = lab.pbx(host, "udp", codecs=("PCMU/8000",), duration=1.0, answer_timeout=20.0).result()
    c2.stop()
    assert pbx["error"] == "" and pbx["confirmed"], f"{pbx['status']} {pbx['reason']} ({pbx['log_file']})"
    invites = c2.requests("INVITE")
    assert len(invites) == 1, c2.describe()
    waited = invites[0].at - dialled
    assert waited < 5.0, f"c2 got the INVITE {waited:.1f} s after the PBX dialled: c1's refusal waited for a timer"
    recs = server.wait_call_records(vc_id, 1, timeout=10)
    assert [(a["Route"], a["StatusCode"]) for a in recs[0].get("Attempts", [])] == [("c1", 503), ("c2", 200)], recs
