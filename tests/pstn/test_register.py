"""Carrier registration (issue 12): a carrier added with `--register` is sent REGISTER (RFC
3261 §10) from the server: To and From `sip:<username>@<carrier host>`, our Contact, one
Call-ID with a rising CSeq, the registrar's 401 answered with a digest of the carrier's
password, the granted Expires honoured (refreshed half-way), a 503's Retry-After waited
for, and `Expires: 0` once `--no-register` turns it off. The status shows in `admin
carriers list` and in /metrics as vc_carrier_registered{carrier=...}.

The registrar is SIPp on 127.0.0.2 (`scenarios/registrar.xml`, `registrar_503.xml`)."""

from __future__ import annotations

import hashlib
import json
import re
import signal
import subprocess
import time

from vctest.server import find_binary

PASSWORD = "reg-s3cret"


def carriers(lab) -> dict[str, dict]:
    """`admin carriers list --json` on the lab's data directory, by carrier name."""
    out = subprocess.run(
        [str(find_binary()), "admin", "carriers", "list", "--json", "--data-dir", str(lab.data_dir)],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    return {d["Name"]: d for d in map(json.loads, (ln for ln in out.splitlines() if ln.startswith("{")))}


def wait_until(what: str, check, timeout: float, describe=lambda: ""):
    """Polls `check()` every 0.1 s until it is truthy; its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout} s\n{describe()}")
        time.sleep(0.1)


def digest_ok(auth: str, method: str, password: str) -> bool:
    """Whether an Authorization header's digest (RFC 2617 §3.2.2, qop auth) is the one
    `password` gives."""
    params = dict(re.findall(r'(\w+)="?([^",]+)"?', auth[len("Digest "):]))
    md5 = lambda text: hashlib.md5(text.encode()).hexdigest()
    ha1 = md5(f"{params['username']}:{params['realm']}:{password}")
    ha2 = md5(f"{method}:{params['uri']}")
    expected = md5(":".join([ha1, params["nonce"], params["nc"], params["cnonce"], params["qop"], ha2]))
    return params["response"] == expected


def registering(lab, scenario: str, count: int):
    """The registrar (SIPp running `scenario` on 127.0.0.2) as carrier c1 with `--register`,
    the server; (registrar, server, the first `count` REGISTERs it got within 15 s)."""
    reg = lab.sipp_uas("c1", scenario, "127.0.0.2")
    lab.add_carrier("c1", reg.address, 1, "PCMU", "--username", "trunk", "--password", PASSWORD, "--register")
    server = lab.start_server()
    regs = wait_until(f"{count} REGISTERs", lambda: len(reg.requests("REGISTER")) >= count and reg.requests("REGISTER"),
                      15, reg.describe)
    return reg, server, regs[:count]


def test_register_with_digest_refresh_and_unregister(pstn_lab, pstn_tools):
    lab, tools = pstn_lab, pstn_tools
    # Registration, then the refresh: each REGISTER is challenged once (two per round).
    reg, server, regs = registering(lab, "registrar.xml", 4)
    first, answered, refresh, _ = regs[:4]
    h = lambda m, name: tools.header(m.text, name)
    assert first.text.startswith(f"REGISTER sip:{reg.address} SIP/2.0"), first.text
    for m in regs[:4]:
        assert re.fullmatch(r"<sip:trunk@127\.0\.0\.2>(;tag=\S+)?", h(m, "From")), m.text
        assert h(m, "To") == "<sip:trunk@127.0.0.2>", m.text
        assert f"@127.0.0.1:{server.sip_port}" in h(m, "Contact"), m.text
        assert h(m, "Call-ID") == h(first, "Call-ID"), "a refresh must keep the Call-ID (§10.2.4)"
    assert h(first, "Expires") == "3600", first.text
    assert not h(first, "Authorization"), first.text
    seqs = [int(h(m, "CSeq").split()[0]) for m in regs[:4]]
    assert seqs == sorted(set(seqs)), f"CSeq must rise: {seqs}"
    auth = h(answered, "Authorization")
    assert auth.startswith("Digest ") and 'username="trunk"' in auth and 'realm="telco.example"' in auth, auth
    assert digest_ok(auth, "REGISTER", PASSWORD), f"the digest is not the one the password gives: {auth}"
    assert PASSWORD not in answered.text
    # Expires: 6 granted → refreshed after about 3 s (half-way), well before it runs out.
    waited = refresh.at - answered.at
    assert 2.0 <= waited <= 5.0, f"refreshed {waited:.1f} s after the 200 (Expires: 6), not about 3 s"

    c1 = carriers(lab)["c1"]
    assert c1["Registration"] == "registered" and c1["RegistrationStatus"] == 200, c1
    left = c1["RegistrationExpiresMs"] / 1000 - time.time()
    assert 0 < left <= 7, f"the binding runs out in {left:.1f} s, not within Expires: 6"
    table = subprocess.run(
        [str(find_binary()), "admin", "carriers", "list", "--data-dir", str(lab.data_dir)],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    assert re.search(r"^c1 .*registered \(200\), expires in \d s", table, re.M), table
    assert server.metrics().get('vc_carrier_registered{carrier="c1"}') == 1

    # Turned off: the binding is removed with Expires: 0.
    subprocess.run(
        [str(find_binary()), "admin", "carriers", "update", "c1", "--no-register", "--data-dir", str(lab.data_dir)],
        capture_output=True, text=True, timeout=60, check=True,
    )
    zero = wait_until("a REGISTER with Expires: 0",
                      lambda: [m for m in reg.requests("REGISTER") if h(m, "Expires") == "0"], 10, reg.describe)
    assert h(zero[0], "Call-ID") == h(first, "Call-ID"), zero[0].text
    wait_until("the carrier shown unregistered", lambda: carriers(lab)["c1"]["Registration"] == "unregistered", 10,
               lambda: json.dumps(carriers(lab)))
    assert server.metrics().get('vc_carrier_registered{carrier="c1"}') == 0
    # Nothing more once un-registered.
    count = len(reg.requests("REGISTER"))
    time.sleep(4)
    assert len(reg.requests("REGISTER")) == count, reg.describe()
    reg.stop()
    assert PASSWORD not in server.log(), "the carrier's password is in the server log"


def test_a_busy_registrar_is_retried_after_its_retry_after(pstn_lab, pstn_tools):
    lab, tools = pstn_lab, pstn_tools
    reg, server, regs = registering(lab, "registrar_503.xml", 2)
    server.wait_for_log(r"REGISTER to the carrier failed.*status=Some\(503\)")
    # Retry-After: 2 is honoured (not sooner, and not the longer exponential step).
    waited = regs[1].at - regs[0].at
    assert 1.9 <= waited <= 3.5, f"retried {waited:.1f} s after the 503 with Retry-After: 2"
    c1 = wait_until("the carrier shown registered", lambda: carriers(lab)["c1"]["Registration"] == "registered"
                    and carriers(lab)["c1"], 10, lambda: json.dumps(carriers(lab)))
    assert c1["RegistrationStatus"] == 200, c1
    left = c1["RegistrationExpiresMs"] / 1000 - time.time()
    assert 50 < left <= 61, f"Expires: 60 granted, the binding runs out in {left:.1f} s"
    assert server.metrics().get('vc_carrier_registered{carrier="c1"}') == 1
    # Removing the carrier removes the binding too.
    subprocess.run(
        [str(find_binary()), "admin", "carriers", "remove", "c1", "--data-dir", str(lab.data_dir)],
        capture_output=True, text=True, timeout=60, check=True,
    )
    wait_until("a REGISTER with Expires: 0",
               lambda: [m for m in reg.requests("REGISTER") if tools.header(m.text, "Expires") == "0"], 10,
               reg.describe)
    reg.stop()


def test_shutdown_removes_the_binding(pstn_lab, pstn_tools):
    """SIGTERM: the drain sends `Expires: 0` for a carrier it is registered with."""
    lab, tools = pstn_lab, pstn_tools
    reg, server, regs = registering(lab, "registrar_503.xml", 2)
    wait_until("the carrier shown registered", lambda: carriers(lab)["c1"]["Registration"] == "registered", 10,
               lambda: json.dumps(carriers(lab)))
    server.proc.send_signal(signal.SIGTERM)
    server.proc.wait(timeout=20)
    zero = wait_until("a REGISTER with Expires: 0",
                      lambda: [m for m in reg.requests("REGISTER") if tools.header(m.text, "Expires") == "0"], 5,
                      reg.describe)
    assert tools.header(zero[0].text, "Call-ID") == tools.header(regs[0].text, "Call-ID"), zero[0].text
    reg.stop()
