"""H4 (issue 14): unauthenticated HTTP must not exhaust the server's memory or connections,
nor hold up its shutdown; unauthenticated lookups must not slow the API (issue 14, Lows).

Against the real binary, every attacker on 127.0.0.2 / 127.0.0.3, each phase bounded in
count and time:

- The slow-client flood: SLOW_POSTERS clients POST a BODY_BYTES body unsigned (or signed with
  an unknown access key) at SLOW_RATE bytes/s, and SLOW_HEADERS connections send part of a
  request head and then nothing. The server's VmRSS (/proc/<pid>/status) is sampled: it grows
  by at most RSS_GROWTH_MIB and stays under RSS_BOUND_MIB. Each poster gets its 403 (AWS error
  JSON) after its head, before it has sent a tenth of its body: the body is never buffered.
  A boto3 call signed with the real key is served during the flood, and the connections
  that never finished their heads are closed once --http-header-timeout has passed.
- KEYED_POSTERS clients that know our access key id (not the secret) POST large bodies: they
  are read before the signature fails, but only BODY_BUDGET_MIB of them at once, and a signed
  CreateVoiceConnector (a small body) is served meanwhile.
- A signed request whose body comes too slowly gets 408 at --http-request-timeout.
- --http-max-connections: the connections past the cap get 503 at once and are counted.
- /client-events flooded with well-formed bogus tokens: signed API calls keep answering.
- SIGTERM with a half-sent head and a half-sent body open: the process ends within
  --http-shutdown-timeout plus EXIT_SLACK_S.
"""

from __future__ import annotations

import http.client
import json
import secrets
import signal
import socket
import statistics
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from vctest.rss import RssSampler, vm_rss_kib
from vctest.server import serve

ATTACKERS = ("127.0.0.2", "127.0.0.3")
#: The flood: slow POSTers and connections that never finish their heads.
SLOW_POSTERS = 160
SLOW_HEADERS = 460
BODY_BYTES = 600 * 1024
#: Bytes per second each slow poster sends its body at (it would take 60 s in all).
SLOW_RATE = 10 * 1024
#: The listener's deadlines in these tests (the defaults are 10 s / 30 s / 5 s).
HEADER_TIMEOUT_S = 4
REQUEST_TIMEOUT_S = 6
SHUTDOWN_TIMEOUT_S = 3
#: The stated memory bounds: growth of VmRSS over the idle server, and VmRSS at any time.
RSS_GROWTH_MIB = 24
RSS_BOUND_MIB = 96
#: What exiting may take beyond --http-shutdown-timeout (the SIP edge and the store close).
EXIT_SLACK_S = 2.5


def http_args(**extra: int) -> tuple[str, ...]:
    args = {
        "http-header-timeout": HEADER_TIMEOUT_S,
        "http-request-timeout": REQUEST_TIMEOUT_S,
        "http-shutdown-timeout": SHUTDOWN_TIMEOUT_S,
    }
    args.update({k.replace("_", "-"): v for k, v in extra.items()})
    out: list[str] = []
    for k, v in args.items():
        out += [f"--{k}", str(v)]
    return tuple(out)


@pytest.fixture(scope="module")
def http_server(tmp_path_factory):
    """A server of its own (the floods must not touch other tests)."""
    yield from serve(tmp_path_factory.mktemp("vc-http"), extra_args=http_args(), label="http")


def api_port(server) -> int:
    return urllib.parse.urlsplit(server.api_url).port


def connect_from(src: str, port: int, timeout: float = 5.0) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    return s


def signed_headers(server, method: str, path: str, body: bytes, key_id: str | None = None) -> dict:
    """botocore's SigV4 headers for a request of ours (Host included)."""
    url = server.api_url + path
    req = AWSRequest(method=method, url=url, data=body, headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials(key_id or server.key_id, server.secret), "chime", "us-east-1").add_auth(req)
    return dict(req.prepare().headers)


def head_bytes(method: str, path: str, headers: dict) -> bytes:
    lines = [f"{method} {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_answer(s: socket.socket) -> bytes:
    """Everything the server sends until it closes (or the socket's timeout)."""
    out = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    return out


def slow_poster(server, i: int, stop_at: float) -> dict:
    """POSTs BODY_BYTES at SLOW_RATE: unsigned, or (every other one) signed with an access
    key that is not ours. Returns what the server answered and how much body went out."""
    src = ATTACKERS[i % 2]
    body_len = BODY_BYTES
    if i % 2:
        headers = signed_headers(server, "POST", "/voice-connectors", b"x" * 16, key_id="AKIDNOTOURS000000000")
        headers["Content-Length"] = str(body_len)
    else:
        headers = {"Host": f"127.0.0.1:{api_port(server)}", "Content-Type": "application/json",
                   "Content-Length": str(body_len)}
    sent = 0
    answer = b""
    try:
        s = connect_from(src, api_port(server), timeout=10)
    except OSError as e:
        return {"error": repr(e), "sent": 0, "answer": b""}
    s.settimeout(0.2)
    try:
        s.sendall(head_bytes("POST", "/voice-connectors", headers))
        chunk = b"{" + b"x" * (SLOW_RATE // 10 - 1)
        while sent < body_len and time.monotonic() < stop_at:
            try:
                s.sendall(chunk)
                sent += len(chunk)
            except OSError:
                break
            try:
                got = s.recv(65536)
                if got:
                    answer += got
                if not got or b"\r\n\r\n" in answer:
                    break
            except socket.timeout:
                pass  # nothing yet: the 0.2 s timeout paces the body at about SLOW_RATE
        if answer and b"\r\n\r\n" in answer:
            s.settimeout(2)
            answer += read_answer(s)
    finally:
        s.close()
    return {"sent": sent, "answer": answer}


def test_slow_clients_cannot_hold_memory_or_connections(http_server):
    server = http_server
    pid = server.proc.pid
    voice = server.client("chime-sdk-voice")
    voice.list_voice_connectors()
    time.sleep(0.5)
    idle_kib = vm_rss_kib(pid)
    partial_head = (
        f"POST /voice-connectors HTTP/1.1\r\nHost: 127.0.0.1:{api_port(server)}\r\nContent-Type: application/json\r\n"
    ).encode()

    with RssSampler(pid) as rss:
        # The connections that never finish their heads, opened first.
        stalled: list[tuple[socket.socket, float]] = []
        for i in range(SLOW_HEADERS):
            s = connect_from(ATTACKERS[i % 2], api_port(server))
            s.sendall(partial_head)
            stalled.append((s, time.monotonic()))
        opened_by = time.monotonic()
        # The slow posters, all at once; each stops after at most 20 s.
        stop_at = time.monotonic() + 20
        with ThreadPoolExecutor(max_workers=SLOW_POSTERS) as pool:
            posters = [pool.submit(slow_poster, server, i, stop_at) for i in range(SLOW_POSTERS)]
            # A signed request from the real client, during the flood.
            time.sleep(1.0)
            t0 = time.monotonic()
            listed = voice.list_voice_connectors()
            signed_latency = time.monotonic() - t0
            results = [f.result(timeout=40) for f in posters]

        # Wait until every stalled head is past the header deadline, then see who is closed.
        time.sleep(max(0.0, opened_by + HEADER_TIMEOUT_S + 1.5 - time.monotonic()))
        closed = 0
        for s, _ in stalled:
            s.settimeout(0.5)
            try:
                data = s.recv(4096)
                closed += data == b"" or data.startswith(b"HTTP/1.1 408")
            except ConnectionResetError:
                closed += 1
            except socket.timeout:
                pass
            s.close()
    after_kib = vm_rss_kib(pid)

    refused = [r for r in results if r["answer"].startswith(b"HTTP/1.1 403")]
    sent = [r["sent"] for r in results]
    report = (
        f"{SLOW_HEADERS} stalled heads, {SLOW_POSTERS} slow {BODY_BYTES // 1024} KB posters from {ATTACKERS}: "
        f"{len(refused)} got 403, body sent before it max {max(sent)} B / median {statistics.median(sent):.0f} B; "
        f"{closed} stalled heads closed after {HEADER_TIMEOUT_S} s; signed ListVoiceConnectors took "
        f"{signed_latency * 1000:.0f} ms; VmRSS idle {idle_kib / 1024:.1f} MiB, peak {rss.peak_kib / 1024:.1f} MiB "
        f"({rss.samples} samples), after {after_kib / 1024:.1f} MiB"
    )
    print(report)
    assert "VoiceConnectors" in listed, report
    assert signed_latency < 2.0, report
    assert len(refused) == SLOW_POSTERS, [r for r in results if r not in refused][:3]
    for r in refused:
        # AWS error JSON naming the failure, before the body was read.
        body = r["answer"].split(b"\r\n\r\n", 1)[1]
        assert json.loads(body)["Code"] in ("MissingAuthenticationToken", "UnrecognizedClient"), r["answer"]
        assert r["sent"] <= BODY_BYTES // 10, report
    assert closed == SLOW_HEADERS, report
    assert rss.samples > 20, report
    assert rss.peak_kib - idle_kib <= RSS_GROWTH_MIB * 1024, report
    assert rss.peak_kib <= RSS_BOUND_MIB * 1024, report
    assert server.proc.poll() is None


#: Posters that know our access key id but not the secret, and how fast each sends.
KEYED_POSTERS = 120
KEYED_RATE = 120 * 1024
#: The API's budget for large bodies being read at once (api::BODY_BUDGET_BYTES), and the
#: growth allowed: a body is collected in pieces and then copied whole (twice the budget),
#: plus what the connections themselves hold.
BODY_BUDGET_MIB = 16
KEYED_GROWTH_MIB = 2 * BODY_BUDGET_MIB + 16


def keyed_poster(server, i: int) -> dict:
    """POSTs BODY_BYTES at KEYED_RATE with our access key id but a wrong secret; returns the
    answer's status (None when the connection went before one came)."""
    body = b"{" + b"x" * (BODY_BYTES - 1)
    url = server.api_url + "/voice-connectors"
    req = AWSRequest(method="POST", url=url, data=body, headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials(server.key_id, "not-the-secret"), "chime", "us-east-1").add_auth(req)
    headers = dict(req.prepare().headers)
    headers["Content-Length"] = str(len(body))
    s = connect_from(ATTACKERS[i % 2], api_port(server), timeout=REQUEST_TIMEOUT_S + 5)
    answer = b""
    try:
        s.sendall(head_bytes("POST", "/voice-connectors", headers))
        step = KEYED_RATE // 10
        for off in range(0, len(body), step):
            s.sendall(body[off : off + step])
            time.sleep(0.1)
        answer = read_answer(s)
    except OSError:
        try:
            answer = read_answer(s)
        except OSError:
            pass
    finally:
        s.close()
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else None
    return {"status": status, "answer": answer[:400]}


def test_wrong_signatures_with_our_key_hold_bounded_memory(http_server):
    """Whoever knows the access key id gets past the header checks, so its body is read
    before the signature fails; large bodies being read share a 16 MiB budget (the others
    wait, within the body deadline), and the API's own small calls need none of it."""
    server = http_server
    pid = server.proc.pid
    voice = server.client("chime-sdk-voice")
    time.sleep(0.5)
    idle_kib = vm_rss_kib(pid)
    with RssSampler(pid) as rss:
        with ThreadPoolExecutor(max_workers=KEYED_POSTERS) as pool:
            posters = [pool.submit(keyed_poster, server, i) for i in range(KEYED_POSTERS)]
            time.sleep(2.0)
            t0 = time.monotonic()
            created = voice.create_voice_connector(Name="during-flood", RequireEncryption=False)
            write_latency = time.monotonic() - t0
            results = [f.result(timeout=60) for f in posters]
    statuses: dict = {}
    for r in results:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    report = (
        f"{KEYED_POSTERS} posters of {BODY_BYTES // 1024} KB with our key and a wrong secret: answers {statuses}; "
        f"signed CreateVoiceConnector took {write_latency * 1000:.0f} ms; VmRSS idle {idle_kib / 1024:.1f} MiB, "
        f"peak {rss.peak_kib / 1024:.1f} MiB ({rss.samples} samples)"
    )
    print(report)
    assert created["VoiceConnector"]["Name"] == "during-flood", report
    assert write_latency < 2.0, report
    assert set(statuses) <= {403, 408, None}, [r["answer"] for r in results if r["status"] not in (403, 408, None)][:2]
    assert statuses.get(403, 0) >= 10, report
    assert rss.peak_kib - idle_kib <= KEYED_GROWTH_MIB * 1024, report
    assert server.proc.poll() is None


def test_a_signed_request_whose_body_dawdles_gets_408(http_server):
    server = http_server
    body = json.dumps({"Name": "slow", "RequireEncryption": False}).encode()
    headers = signed_headers(server, "POST", "/voice-connectors", body)
    s = connect_from("127.0.0.1", api_port(server), timeout=REQUEST_TIMEOUT_S + 3)
    try:
        t0 = time.monotonic()
        s.sendall(head_bytes("POST", "/voice-connectors", headers) + body[:5])
        answer = read_answer(s)
        took = time.monotonic() - t0
    finally:
        s.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["Code"] == "RequestTimeout", answer
    assert REQUEST_TIMEOUT_S - 0.5 <= took <= REQUEST_TIMEOUT_S + 2, took


def test_an_idle_kept_alive_connection_is_closed_at_the_header_deadline(http_server):
    server = http_server
    conn = http.client.HTTPConnection("127.0.0.1", api_port(server), timeout=HEADER_TIMEOUT_S + 3)
    conn.request("GET", "/healthz")
    assert conn.getresponse().read() == b"ok\n"
    t0 = time.monotonic()
    assert conn.sock.recv(1) == b""
    took = time.monotonic() - t0
    conn.close()
    assert HEADER_TIMEOUT_S - 0.5 <= took <= HEADER_TIMEOUT_S + 2, took


def test_client_events_flood_does_not_slow_the_api(http_server):
    server = http_server
    meetings = server.client("chime-sdk-meetings")
    meeting_id = server.create_meeting()

    def api_latencies(n: int) -> list[float]:
        out = []
        for _ in range(n):
            t0 = time.monotonic()
            meetings.get_meeting(MeetingId=meeting_id)
            out.append(time.monotonic() - t0)
        return out

    baseline = api_latencies(20)
    stop = threading.Event()
    answers: dict[int, int] = {}
    lock = threading.Lock()

    def flood(src: str) -> None:
        conn = None
        while not stop.is_set():
            token = secrets.token_urlsafe(32)[:43]
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", api_port(server), timeout=5,
                                                      source_address=(src, 0))
                conn.request("POST", "/client-events", body=b'{"Events":[]}',
                             headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
                status = conn.getresponse()
                status.read()
                with lock:
                    answers[status.status] = answers.get(status.status, 0) + 1
            except (OSError, http.client.HTTPException):
                conn = None

    threads = [threading.Thread(target=flood, args=(ATTACKERS[i % 2],), daemon=True) for i in range(24)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.0)
        during = api_latencies(40)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)
    flooded = sum(answers.values())
    report = (
        f"/client-events flood: {flooded} bogus-token requests {answers}; GetMeeting median "
        f"{statistics.median(baseline) * 1000:.1f} ms idle, {statistics.median(during) * 1000:.1f} ms during "
        f"(max {max(during) * 1000:.0f} ms); shed {server.metrics().get('vc_http_lookups_shed_total', 0)}"
    )
    print(report)
    assert flooded > 200, report
    assert set(answers) <= {401, 503}, report
    assert max(during) < 1.0, report
    assert statistics.median(during) < max(5 * statistics.median(baseline), 0.05), report


def test_connections_past_the_cap_are_refused_at_once(tmp_path):
    cap = 50
    gen = serve(tmp_path, extra_args=http_args(http_max_connections=cap), label="cap")
    server = next(gen)
    try:
        held = [connect_from(ATTACKERS[0], api_port(server)) for _ in range(cap)]
        for s in held:
            s.sendall(b"GET /healthz HTTP/1.1\r\n")  # never finished
        time.sleep(0.3)
        refused = 0
        for _ in range(10):
            s = connect_from(ATTACKERS[1], api_port(server), timeout=2)
            answer = read_answer(s)
            s.close()
            refused += answer.startswith(b"HTTP/1.1 503")
        for s in held:
            s.close()
        time.sleep(0.5)
        counted = server.metrics().get("vc_http_connections_refused_total", 0)
        assert refused == 10, refused
        assert counted == 10, counted
    finally:
        gen.close()


@pytest.mark.parametrize("half_sent", ["head", "body"])
def test_sigterm_ends_the_process_within_the_deadline(tmp_path, half_sent):
    gen = serve(tmp_path, extra_args=http_args(), label="term")
    server = next(gen)
    try:
        s = connect_from(ATTACKERS[0], api_port(server))
        if half_sent == "head":
            s.sendall(b"POST /voice-connectors HTTP/1.1\r\nHost: x\r\n")
        else:
            body = b'{"Name":"x","RequireEncryption":false}'
            headers = signed_headers(server, "POST", "/voice-connectors", body)
            headers["Content-Length"] = "100000"
            s.sendall(head_bytes("POST", "/voice-connectors", headers) + body[:10])
        idle = connect_from("127.0.0.1", api_port(server))
        time.sleep(0.3)
        t0 = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        server.proc.wait(timeout=SHUTDOWN_TIMEOUT_S + 10)
        took = time.monotonic() - t0
        s.close()
        idle.close()
        print(f"SIGTERM with a half-sent {half_sent} open: exited in {took:.2f} s")
        assert took <= SHUTDOWN_TIMEOUT_S + EXIT_SLACK_S, f"exit took {took:.1f} s"
        assert "voice-connector stopped" in server.log(), server.log()[-2000:]
    finally:
        gen.close()
