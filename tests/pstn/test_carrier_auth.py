"""A carrier that challenges our INVITE (issue 12): its 407 is answered once with the
credentials given to `admin carriers add --username --password` (RFC 3261 §22.2, RFC 2617
§3.2.2: the test recomputes the digest from the password the carrier knows), and the call
connects."""

from __future__ import annotations

import hashlib
import re
import time

import pytest


CARRIER_PASSWORD = "s3cret-trunk"


@pytest.mark.parametrize("password, connects", [(CARRIER_PASSWORD, True), ("wrong", False)])
def test_the_carriers_digest_challenge_is_answered(pstn_lab, pstn_tools, password, connects):
    """`connects` here: whether the digest is the right one (this SIPp carrier answers 200
    either way)."""
    lab, tools = pstn_lab, pstn_tools
    c1 = lab.sipp_uas("c1", "uas_challenge.xml", "127.0.0.2")
    lab.add_carrier("c1", c1.address, 1, "PCMU", "--username", "trunk", "--password", password)
    server = lab.start_server()
    _, host = lab.connector(require_encryption=False)
    pbx = lab.pbx(host, "udp", codecs=("PCMU/8000",), play=lab.tones[440], duration=2.0).result()
    deadline = time.monotonic() + 3.0
    while not c1.requests("BYE") and time.monotonic() < deadline:
        time.sleep(0.1)
    c1.stop()
    invites = c1.requests("INVITE")
    assert len(invites) == 2, c1.describe()
    assert "Proxy-Authorization:" not in invites[0].text, invites[0].text
    auth = tools.header(invites[1].text, "Proxy-Authorization")
    assert auth.startswith("Digest ") and 'username="trunk"' in auth and 'realm="telco.example"' in auth, auth
    assert password not in invites[1].text, "the password itself went over the wire"
    # The retry is the same call: same Call-ID and From tag, the next CSeq.
    for h in ("Call-ID", "From"):
        assert tools.header(invites[0].text, h) == tools.header(invites[1].text, h), c1.describe()
    assert tools.header(invites[1].text, "CSeq") == "2 INVITE", invites[1].text
    # The carrier's check: the digest must be the one its password gives.
    params = dict(re.findall(r'(\w+)="?([^",]+)"?', auth[len("Digest "):]))
    md5 = lambda text: hashlib.md5(text.encode()).hexdigest()
    ha1 = md5(f"trunk:telco.example:{CARRIER_PASSWORD}")
    ha2 = md5(f"INVITE:{params['uri']}")
    expected = md5(":".join([ha1, params["nonce"], params["nc"], params["cnonce"], "auth", ha2]))
    assert params["qop"] == "auth" and params["uri"] == invites[1].text.split(" ", 2)[1], auth
    assert (params["response"] == expected) == connects, (auth, expected)
    assert pbx["error"] == "" and pbx["confirmed"], f"{pbx['status']} {pbx['reason']} ({pbx['log_file']})"
    assert c1.requests("BYE"), c1.describe()
    assert password not in server.log(), "a carrier password in the server log"
