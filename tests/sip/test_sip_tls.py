"""`openssl s_client` against the server's SIP-over-TLS port: TLS 1.3 and TLS 1.2 handshakes
verify against the development CA (chain and host name), TLS 1.0 and 1.1 are refused
(RFC 8996 deprecates both)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest


def s_client(server, *args: str) -> subprocess.CompletedProcess:
    if shutil.which("openssl") is None:
        pytest.fail("openssl is not installed; run scripts/setup-deps")
    cmd = [
        "openssl", "s_client",
        "-connect", f"127.0.0.1:{server.tls_port}",
        "-CAfile", str(server.ca_pem),
        *args,
    ]
    # "Q" on stdin makes s_client close the connection as soon as the handshake is done.
    return subprocess.run(
        cmd, input=b"Q\n", stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=20
    )


@pytest.mark.parametrize(
    "flag,protocol",
    [pytest.param("-tls1_3", "TLSv1.3", id="tls1.3"), pytest.param("-tls1_2", "TLSv1.2", id="tls1.2")],
)
def test_tls_handshake_verifies(sip_server, flag, protocol):
    _, host = sip_server.create_connector(require_encryption=True)
    # SNI and host-name check with the connector's outbound host name (the wildcard
    # *.voiceconnector.localhost), as a PBX dialling `;transport=tls` would do.
    out = s_client(
        sip_server, flag, "-servername", host, "-verify_hostname", host, "-verify_return_error"
    )
    text = out.stdout.decode(errors="replace")
    assert out.returncode == 0, text
    assert "Verify return code: 0 (ok)" in text, text
    cipher = re.search(r"New, (\S+), Cipher is (\S+)", text)
    assert cipher and cipher.group(1) == protocol and cipher.group(2) != "(NONE)", text
    if protocol == "TLSv1.2":
        # Only forward-secret AEAD suites (RFC 7525 §4.2).
        assert cipher.group(2).startswith("ECDHE-") and ("GCM" in cipher.group(2) or "CHACHA20" in cipher.group(2)), text


def test_tls_without_sni_verifies_ip_address(sip_server):
    """A PBX that sends to 127.0.0.1 without SNI still gets a certificate valid for the IP."""
    out = s_client(sip_server, "-noservername", "-verify_ip", "127.0.0.1", "-verify_return_error")
    text = out.stdout.decode(errors="replace")
    assert out.returncode == 0, text
    assert "Verify return code: 0 (ok)" in text, text


@pytest.mark.parametrize("flag", [pytest.param("-tls1", id="tls1.0"), pytest.param("-tls1_1", id="tls1.1")])
def test_old_tls_is_refused(sip_server, flag):
    out = s_client(sip_server, flag, "-cipher", "DEFAULT@SECLEVEL=0")
    text = out.stdout.decode(errors="replace")
    assert out.returncode != 0, text
    assert "Cipher is (NONE)" in text, text
    assert "no peer certificate available" in text, text
    assert re.search(r"alert|wrong version|unsupported protocol", text, re.I), text
    # The server survives the refusal and still completes a modern handshake.
    again = s_client(sip_server, "-tls1_3", "-verify_return_error")
    assert again.returncode == 0, again.stdout.decode(errors="replace")
