"""Per-carrier limits (issue 12): `admin carriers add --max-calls N` caps a carrier's calls
(in set-up or answered), `--cps N` its new calls per second. A carrier at its limit is
skipped for the next one, and the call record lists it as a 503 attempt; when every
carrier is skipped the PBX gets 503 with Retry-After and a Warning naming the limit. The
connector's own CpsLimit is tested in test_origination.py (test_refusals).

Carriers are SIPp UASes on 127.0.0.2 and up; the PBX is pjsua2 (`caller.py`) for calls that
connect and SIPp (`scenarios/carrier_uac_refused.xml`, from 127.0.0.1) for refused ones."""

from __future__ import annotations

import importlib.util
import re
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _origination_helpers():
    """test_origination.py as a plain module: its SIPp UAC runner and record helpers."""
    spec = importlib.util.spec_from_file_location("pstn_origination_helpers", HERE / "test_origination.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


orig = _origination_helpers()
REFUSED = re.compile(r"refused status=(\d+) warning=(.*) retry_after=(\d*)")


def wait_for(what: str, check, timeout: float, describe=lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout} s\n{describe()}")
        time.sleep(0.05)


def refused_calls(tools, tmp_path, server, host: str, name: str, calls: int = 1, rate: int = 10) -> list[re.Match]:
    """`calls` PBX calls (SIPp from 127.0.0.1) to the connector `host` that must be refused;
    each refusal's (status, Warning, Retry-After)."""
    run = orig.run_uac(tools, tmp_path, name, "carrier_uac_refused.xml", server.sip_port, tools.number,
                       source="127.0.0.1", calls=calls, rate=rate, keys={"host": host}, timeout=30)
    results = [REFUSED.fullmatch(ln) for ln in run.log_lines if ln.startswith("refused ")]
    assert len(results) == calls and all(results), run.describe()
    return results


def test_max_calls_skips_a_full_carrier_and_refuses_when_all_are(pstn_lab, pstn_tools, tmp_path):
    """c1 and c2 take one call each: the first call goes to c1, the second, with c1 full,
    to c2, and a third, with both full, is refused 503 without reaching either."""
    lab, tools = pstn_lab, pstn_tools
    c1 = lab.sipp_uas("c1", "uas_answer.xml", "127.0.0.2")
    c2 = lab.sipp_uas("c2", "uas_answer.xml", "127.0.0.3")
    lab.add_carrier("c1", c1.address, 1, "PCMU", "--max-calls", "1")
    lab.add_carrier("c2", c2.address, 2, "PCMU", "--max-calls", "1")
    server = lab.start_server()
    vc_id, host = lab.connector(require_encryption=False)
    first = lab.pbx(host, "udp", codecs=("PCMU/8000",), duration=12.0, name="pbx1")
    wait_for("c1 answering the first call", lambda: c1.requests("ACK"), 15, c1.describe)
    second = lab.pbx(host, "udp", codecs=("PCMU/8000",), duration=8.0, name="pbx2")
    wait_for("c2 answering the second call", lambda: c2.requests("ACK"), 15, c2.describe)

    (third,) = refused_calls(tools, tmp_path, server, host, "third")
    status, warning, retry_after = third.groups()
    assert status == "503" and retry_after, third.group(0)
    for c in ("c1", "c2"):
        assert f"{c} 503 carrier at max calls (1)" in warning, warning

    results = [first.result(), second.result()]
    # The places are given back when the calls end: the next call goes to c1 again.
    results.append(lab.pbx(host, "udp", codecs=("PCMU/8000",), duration=1.0, name="pbx4").result())
    for r in results:
        assert r["error"] == "" and r["confirmed"], f"{r['status']} {r['reason']} ({r['log_file']})"
    wait_for("the last BYE", lambda: len(c1.requests("BYE")) == 2, 5, c1.describe)
    c1.stop()
    c2.stop()
    assert len(c1.requests("INVITE")) == 2, c1.describe()
    assert len(c2.requests("INVITE")) == 1, c2.describe()
    recs = server.wait_call_records(vc_id, 4, timeout=15)
    tried = sorted(orig.attempts(r) for r in recs)
    assert tried == [[("c1", 200)], [("c1", 200)], [("c1", 503), ("c2", 200)], [("c1", 503), ("c2", 503)]], recs


def test_cps_skips_a_carrier_for_the_rest_of_the_second(pstn_lab, pstn_tools, tmp_path):
    """c1 (`--cps 1`) and c2 both answer 503, so every call of a burst of four is refused:
    the first after trying c1 and c2, the other three, in the same second, after c2 only
    (c1 skipped for its calls per second)."""
    lab, tools = pstn_lab, pstn_tools
    c1 = lab.sipp_uas("c1", "uas_503.xml", "127.0.0.2")
    c2 = lab.sipp_uas("c2", "uas_503.xml", "127.0.0.3")
    lab.add_carrier("c1", c1.address, 1, "PCMU", "--cps", "1")
    lab.add_carrier("c2", c2.address, 2, "PCMU")
    server = lab.start_server()
    vc_id, host = lab.connector(require_encryption=False)
    results = refused_calls(tools, tmp_path, server, host, "burst", calls=4, rate=50)
    c1.stop()
    c2.stop()
    warnings = [m.group(2) for m in results]
    assert all(m.group(1) == "503" and m.group(3) for m in results), warnings
    skipped = [w for w in warnings if "c1 503 carrier at its calls per second (1)" in w]
    assert len(skipped) == 3, warnings
    assert len(c1.requests("INVITE")) == 1, c1.describe()
    assert len(c2.requests("INVITE")) == 4, c2.describe()
    recs = server.wait_call_records(vc_id, 4, timeout=15)
    assert sorted(orig.attempts(r) for r in recs) == [[("c1", 503), ("c2", 503)]] * 4, recs
