"""Carrier keep-alives (issue 12): the server sends each carrier an OPTIONS every
--carrier-options-interval seconds; a carrier that answers is `up`, one that cannot be
reached is `down` (after Timer F, 32 s, without an answer), in `voice-connector admin carriers list` (from the shared database, so
every node shows the same) and in /metrics as vc_carrier_up{carrier=...}."""

from __future__ import annotations

import json
import socket
import subprocess
import time

from vctest.server import find_binary, serve


def closed_tcp_port(host: str) -> int:
    """A TCP port on `host` with nothing listening (connects are refused at once)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def carriers(data_dir) -> dict[str, dict]:
    out = subprocess.run(
        [str(find_binary()), "admin", "carriers", "list", "--json", "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    docs = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return {d["Name"]: d for d in docs}


def test_a_carrier_that_answers_is_up_and_an_unreachable_one_down(pstn_lab):
    lab = pstn_lab
    c1 = lab.sipp_uas("c1", "uas_answer.xml", "127.0.0.2")
    lab.add_carrier("c1", c1.address)
    dead = f"127.0.0.6:{closed_tcp_port('127.0.0.6')}"
    subprocess.run(
        [str(find_binary()), "admin", "carriers", "add", "c2", "--data-dir", str(lab.data_dir),
         "--address", dead, "--transport", "tcp", "--prefix", "+44"],
        check=True, capture_output=True, timeout=60,
    )
    lab.work.mkdir(parents=True, exist_ok=True)
    gen = serve(lab.work, ("--carrier-options-interval", "1"), label="pstn", rtp_size=20)
    server = next(gen)
    try:
        # c2's refused TCP connect is a transport error that ends its OPTIONS transaction at
        # once (RFC 3261 §17.1.4); a carrier that never answers is down after Timer F (32 s).
        deadline = time.monotonic() + 45
        seen = {}
        while time.monotonic() < deadline:
            seen = carriers(lab.data_dir)
            if seen["c1"]["Status"] == "up" and seen["c2"]["Status"] == "down":
                break
            time.sleep(0.5)
        assert seen["c1"]["Status"] == "up" and seen["c1"]["LastStatus"] == 200, seen
        assert seen["c2"]["Status"] == "down" and seen["c2"]["LastStatus"] is None, seen
        m = server.metrics()
        assert m.get('vc_carrier_up{carrier="c1"}') == 1, m
        assert m.get('vc_carrier_up{carrier="c2"}') == 0, m
        # The carrier saw our OPTIONS: to its address, from our SIP domain.
        options = c1.requests("OPTIONS")
        ours = [o for o in options if "keepalive@" in o.text]
        assert ours, c1.describe()
        assert ours[0].text.startswith(f"OPTIONS sip:{c1.address} SIP/2.0"), ours[0].text
        # The table shows the same.
        table = subprocess.run(
            [str(find_binary()), "admin", "carriers", "list", "--data-dir", str(lab.data_dir)],
            capture_output=True, text=True, timeout=60, check=True,
        ).stdout
        rows = {line.split()[0]: line.split()[1] for line in table.splitlines()[1:] if line.strip()}
        assert rows == {"c1": "up", "c2": "down"}, table
    finally:
        gen.close()
