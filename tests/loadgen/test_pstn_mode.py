"""vc-loadgen --pstn (bench/pstn/run's generator) against the real server: it is the PBX
placing calls to +1 numbers at a voice connector's host and the carrier trunk on 127.0.0.2
answering the server's INVITEs, with plain RTP both ways. Every call must be answered on
both sides, every leg must receive the other side's packets with the accounting adding up,
and with a G.722 PBX leg and a PCMU-only carrier the server transcodes (the carrier's
answer names PCMU, and both legs still hear each other).

The carrier is added with `voice-connector admin carriers add` before `serve`, as the
operator does; keep-alives are off (`--carrier-options-interval 0`) because the carrier
only listens while the generator runs.
"""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import pytest

from vctest.server import find_binary, serve

from test_loadgen import loadgen_binary  # noqa: F401 (fixture)

CARRIER_IP = "127.0.0.2"


def carrier_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((CARRIER_IP, 0))
        return s.getsockname()[1]


@pytest.fixture
def pstn_server(tmp_path):
    """A server whose only carrier (PCMU) is 127.0.0.2:<port>; yields (server, carrier address)."""
    carrier = f"{CARRIER_IP}:{carrier_port()}"
    work = tmp_path / "vc"
    (work / "data").mkdir(parents=True)
    add = [str(find_binary()), "admin", "carriers", "add", "lg-carrier", "--data-dir", str(work / "data"),
           "--address", carrier, "--transport", "udp", "--prefix", "+1", "--priority", "1", "--codecs", "PCMU"]
    p = subprocess.run(add, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    gen = serve(work, ("--carrier-options-interval", "0"), label="lg")
    server = next(gen)
    try:
        yield server, carrier
    finally:
        next(gen, None)


def run_pstn(binary: Path, server, carrier: str, calls: int, codec: str) -> dict:
    _, host = server.create_connector(False)
    cmd = [str(binary), "--pstn", f"127.0.0.1:{server.sip_port}", "--carrier", carrier, "--uri-host", host,
           "--legs", str(calls), "--codec", codec, "--carrier-codec", "pcmu", "--cps", "20",
           "--warmup", "1", "--duration", "3"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


@pytest.mark.parametrize("codec", ["pcmu", "g722"])
def test_calls_through_the_b2bua_carry_rtp_both_ways(pstn_server, loadgen_binary, codec):  # noqa: F811
    server, carrier = pstn_server
    rep = run_pstn(loadgen_binary, server, carrier, 4, codec)
    c = rep["calls"]
    assert (c["attempted"], c["answered"], c["carrier_invites"], c["carrier_answered"]) == (4, 4, 4, 4), c
    assert c["failed_by_status"] == {} and c["bad_answer"] == 0 and c["carrier_refused"] == 0, c
    assert c["other_end"] == {} and c["carrier_other_end"] == {}, c
    assert c["bye_unanswered"] == 0, c
    # The PBX offered only `codec` and the carrier accepts only PCMU: with no bad answer and
    # no refusal, each leg got its own codec, so a G.722 run was transcoded by the server.
    assert (rep["codec"], rep["carrier_codec"]) == ({"pcmu": "PCMU", "g722": "G722"}[codec], "PCMU"), rep
    for side in ("rx_pbx", "rx_carrier"):
        rx = rep[side]
        assert rx["legs"] == 4 and rx["legs_without_packets"] == 0, (side, rx)
        # 3 s at 50 packets/s per leg, measured: the other side's tone arrived.
        assert rx["received"] >= 4 * 100, (side, rx)
        assert rx["expected"] == rx["received"] + rx["lost"], (side, rx)
        assert rx["lost_pct"] <= 1.0, (side, rx)
    assert rep["rx"]["received"] == rep["rx_pbx"]["received"] + rep["rx_carrier"]["received"]


def test_pstn_mode_refuses_addresses_outside_loopback(loadgen_binary):  # noqa: F811
    p = subprocess.run([str(loadgen_binary), "--pstn", "192.0.2.1:5060", "--carrier", "127.0.0.2:5080",
                        "--legs", "1"], capture_output=True, text=True, timeout=30)
    assert p.returncode != 0
    assert "127.0.0.0/8" in p.stderr, p.stderr
