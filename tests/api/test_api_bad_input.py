"""Raw, SigV4-signed requests (botocore's signer + requests) with bad input: each gets a 4xx
AWS error with a message that names the problem, and the server never panics."""

from __future__ import annotations

import datetime
import json
import random
import socket
import uuid

import pytest


@pytest.fixture(scope="module")
def srv(start_module_server):
    """One SQLite server for the module (these tests do not depend on the backend)."""
    return start_module_server("sqlite", ["--api-rate-limit", "0"])


def error_of(resp):
    """(status, x-amzn-ErrorType, Message) of an AWS error response."""
    body = resp.json()
    assert set(body) >= {"Code", "Message"}, body
    assert resp.headers["x-amzn-ErrorType"].endswith("Exception")
    assert body["Code"] == resp.headers["x-amzn-ErrorType"].removesuffix("Exception")
    return resp.status_code, resp.headers["x-amzn-ErrorType"], body["Message"]


def test_well_formed_raw_request_works(srv):
    r = srv.signed("POST", "/voice-connectors", json.dumps({"Name": "raw", "RequireEncryption": True}))
    assert r.status_code == 201, r.text
    assert r.json()["VoiceConnector"]["Name"] == "raw"
    assert r.headers.get("x-amzn-RequestId")


@pytest.mark.parametrize(
    "path,body,needle",
    [
        ("/voice-connectors", '{"Name": "x", "RequireEncryption": tru', "not valid JSON"),
        ("/voice-connectors", "[1, 2]", "must be a JSON object"),
        ("/voice-connectors", '{"Name": "x"}', "RequireEncryption is required"),
        ("/voice-connectors", '{"RequireEncryption": true}', "Name is required"),
        ("/voice-connectors", '{"Name": 5, "RequireEncryption": true}', "Name must be a string"),
        ("/voice-connectors", '{"Name": "x", "RequireEncryption": "yes"}', "RequireEncryption must be true or false"),
        ("/voice-connectors", '{"Name": "bad/name", "RequireEncryption": true}', "Name"),
        ("/voice-connectors", '{"Name": "x", "RequireEncryption": true, "AwsRegion": "mars-1"}', "AwsRegion"),
        ("/meetings", '{"MediaRegion": "us-east-1", "ExternalMeetingId": "mtg"}', "ClientRequestToken is required"),
        ("/meetings", '{"ClientRequestToken": "tok-1", "MediaRegion": 7, "ExternalMeetingId": "mtg"}', "MediaRegion must be a string"),
        ("/meetings", '{"ClientRequestToken": "tok-1", "MediaRegion": "us-east-1", "ExternalMeetingId": "mtg", "TenantIds": "t"}', "TenantIds must be a list"),
        ("/meetings", "\xff\xfe", "not valid JSON"),
    ],
)
def test_bad_bodies_get_400_with_a_clear_message(srv, path, body, needle):
    r = srv.signed("POST", path, body.encode("latin-1"))
    status, kind, msg = error_of(r)
    assert (status, kind) == (400, "BadRequestException"), (status, kind, msg)
    assert needle in msg, msg
    srv.assert_healthy()


def test_nested_wrong_types(srv):
    vc = srv.signed("POST", "/voice-connectors", '{"Name": "n", "RequireEncryption": true}').json()
    vc_id = vc["VoiceConnector"]["VoiceConnectorId"]
    cases = [
        ('{"Termination": {"CidrAllowedList": "127.0.0.1/32"}}', "Termination.CidrAllowedList must be a list"),
        ('{"Termination": {"CidrAllowedList": [5]}}', "Termination.CidrAllowedList[0] must be a string"),
        ('{"Termination": {"CpsLimit": "many"}}', "Termination.CpsLimit must be an integer"),
        ('{"Termination": {"CpsLimit": 1.5}}', "Termination.CpsLimit must be an integer"),
        ('{"Termination": {"CpsLimit": 0}}', "CpsLimit"),
        ('{"Termination": {"CallingRegions": ["ZZ"]}}', "CallingRegions"),
        ('{"Termination": {"DefaultPhoneNumber": "12065550100"}}', "DefaultPhoneNumber"),
        ('{"Termination": 3}', "Termination must be an object"),
        ("{}", "Termination is required"),
    ]
    for body, needle in cases:
        r = srv.signed("PUT", f"/voice-connectors/{vc_id}/termination", body)
        status, kind, msg = error_of(r)
        assert (status, kind) == (400, "BadRequestException"), (body, status, msg)
        assert needle in msg, (body, msg)
    r = srv.signed("PUT", f"/voice-connectors/{vc_id}/origination",
                   '{"Origination": {"Routes": [{"Host": "h", "Port": 99999, "Protocol": "UDP", "Priority": 1, "Weight": 1}]}}')
    status, kind, msg = error_of(r)
    assert status == 400 and "Port" in msg, msg
    r = srv.signed("GET", "/voice-connectors?max-results=abc")
    status, kind, msg = error_of(r)
    assert status == 400 and "MaxResults must be an integer" in msg, msg
    r = srv.signed("GET", "/voice-connectors?max-results=0")
    status, kind, msg = error_of(r)
    assert status == 400 and "MaxResults" in msg, msg
    srv.assert_healthy()


def test_body_over_one_mib(srv):
    big = json.dumps({"Name": "x", "RequireEncryption": True, "Pad": "a" * (1024 * 1024)})
    r = srv.signed("POST", "/voice-connectors", big)
    status, kind, msg = error_of(r)
    assert status == 413 and kind == "BadRequestException", (status, kind)
    assert "limit is 1048576 bytes" in msg, msg

    # Without Content-Length (chunked): the limit holds while reading a signed request's
    # body; an unsigned one is refused on its headers, before its body is read (issue 14, H4).
    def chunks():
        for _ in range(20):
            yield b"a" * 65536 * 2

    import requests
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    r = requests.post(srv.endpoint + "/voice-connectors", data=chunks(),
                      headers={"Content-Type": "application/json"}, timeout=30)
    status, kind, msg = error_of(r)
    assert (status, kind) == (403, "MissingAuthenticationTokenException"), (status, msg)

    req = AWSRequest(method="POST", url=srv.endpoint + "/voice-connectors", data=b"a" * (65536 * 2 * 20),
                     headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials(srv.key_id, srv.secret), "chime", "us-east-1").add_auth(req)
    headers = {k: v for k, v in req.headers.items() if k.lower() != "content-length"}
    r = requests.post(srv.endpoint + "/voice-connectors", data=chunks(), headers=headers, timeout=30)
    status, kind, msg = error_of(r)
    assert status == 413 and "limit is 1048576 bytes" in msg, (status, msg)
    srv.assert_healthy()


def test_authentication_failures(srv):
    r = srv.signed("GET", "/voice-connectors", sign=False)
    status, kind, msg = error_of(r)
    assert (status, kind) == (403, "MissingAuthenticationTokenException")

    r = srv.signed("GET", "/voice-connectors", secret="wrong-secret")
    status, kind, msg = error_of(r)
    assert (status, kind) == (403, "InvalidSignatureException")
    assert "signature" in msg.lower()

    for auth in ["Bearer abc", "AWS4-HMAC-SHA256 Credential=x", "AWS4-HMAC-SHA256 garbage,,,=",
                 "AWS4-HMAC-SHA256 Credential=" + srv.key_id + "/2020/x, SignedHeaders=host, Signature=00"]:
        r = srv.signed("GET", "/voice-connectors", sign=False,
                       headers={"Authorization": auth, "X-Amz-Date": "20260101T000000Z"})
        status, kind, msg = error_of(r)
        assert status == 403, (auth, status, kind, msg)

    # Signed 20 minutes ago: refused as expired (AWS allows 15 minutes of skew).
    old = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) - datetime.timedelta(minutes=20)
    r = srv.signed("GET", "/voice-connectors", signed_at=old)
    status, kind, msg = error_of(r)
    assert (status, kind) == (403, "InvalidSignatureException"), msg
    assert "expired" in msg.lower()

    # The body changed after signing.
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    import requests

    req = AWSRequest(method="POST", url=srv.endpoint + "/voice-connectors",
                     data=b'{"Name": "a", "RequireEncryption": true}',
                     headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials(srv.key_id, srv.secret), "chime", "us-east-1").add_auth(req)
    p = req.prepare()
    r = requests.post(p.url, data=b'{"Name": "b", "RequireEncryption": true}',
                      headers=dict(p.headers), timeout=10)
    status, kind, msg = error_of(r)
    assert (status, kind) == (403, "InvalidSignatureException")
    srv.assert_healthy()


def test_unknown_operations_and_ids(srv):
    r = srv.signed("GET", "/no-such-thing")
    status, kind, _ = error_of(r)
    assert status == 404 and kind == "UnknownOperationException"
    r = srv.signed("DELETE", "/voice-connectors")
    status, _, _ = error_of(r)
    assert status in (404, 405)
    r = srv.signed("GET", "/voice-connectors/%ff%fe")
    status, _, _ = error_of(r)
    assert 400 <= status < 500
    r = srv.signed("GET", f"/meetings/{uuid.uuid4()}")
    status, kind, _ = error_of(r)
    assert (status, kind) == (404, "NotFoundException")
    srv.assert_healthy()


def test_random_garbage_never_panics(srv):
    """Mutated bodies on every body-taking route: only 4xx answers, and the server lives."""
    vc_id = srv.signed("POST", "/voice-connectors", '{"Name": "g", "RequireEncryption": true}').json()[
        "VoiceConnector"]["VoiceConnectorId"]
    mid = srv.signed("POST", "/meetings", json.dumps({
        "ClientRequestToken": "garbage-1", "MediaRegion": "us-east-1", "ExternalMeetingId": "gg"})).json()[
        "Meeting"]["MeetingId"]
    seeds = [
        ("POST", "/voice-connectors", {"Name": "n", "RequireEncryption": True}),
        ("PUT", f"/voice-connectors/{vc_id}", {"Name": "n", "RequireEncryption": True}),
        ("PUT", f"/voice-connectors/{vc_id}/termination",
         {"Termination": {"CidrAllowedList": ["10.0.0.0/8"], "CallingRegions": ["US"], "CpsLimit": 2}}),
        ("PUT", f"/voice-connectors/{vc_id}/origination",
         {"Origination": {"Routes": [{"Host": "h.example", "Port": 5060, "Protocol": "TCP", "Priority": 1, "Weight": 1}]}}),
        ("POST", f"/voice-connectors/{vc_id}/termination/credentials?operation=put",
         {"Credentials": [{"Username": "u", "Password": "p"}]}),
        ("POST", f"/voice-connectors/{vc_id}?operation=associate-phone-numbers",
         {"E164PhoneNumbers": ["+12065550100"]}),
        ("POST", "/meetings", {"ClientRequestToken": "abc", "MediaRegion": "us-east-1", "ExternalMeetingId": "x"}),
        ("POST", f"/meetings/{mid}/attendees", {"ExternalUserId": "someone"}),
        ("POST", f"/meetings/{mid}/attendees?operation=batch-create", {"Attendees": [{"ExternalUserId": "ab"}]}),
    ]
    rng = random.Random(1234)
    junk_values = [None, True, 0, -1, 2**63, 1e308, "", "x" * 5000, [], {}, [[[]]], {"a": {"b": None}},
                   "\u0000", "\ud7ff", "+1", "../../etc/passwd"]

    def mutate(doc):
        if isinstance(doc, dict) and doc and rng.random() < 0.7:
            k = rng.choice(list(doc))
            doc = dict(doc)
            doc[k] = mutate(doc[k]) if rng.random() < 0.5 else rng.choice(junk_values)
            return doc
        if isinstance(doc, list) and doc and rng.random() < 0.7:
            return [mutate(x) for x in doc] + ([rng.choice(junk_values)] if rng.random() < 0.3 else [])
        return rng.choice(junk_values)

    statuses = []
    for i in range(150):
        method, path, doc = rng.choice(seeds)
        text = json.dumps(mutate(doc))
        if rng.random() < 0.2:
            cut = rng.randrange(len(text) + 1)
            text = text[:cut] + rng.choice(["", "}", "\"", "\\", "\x00", "{" * 300])
        r = srv.signed(method, path, text.encode("utf-8", "surrogatepass"))
        statuses.append(r.status_code)
        assert r.status_code < 500, (method, path, text[:300], r.status_code, r.text)
    assert any(s >= 400 for s in statuses)
    # Deep nesting is refused, not a stack overflow.
    r = srv.signed("POST", "/voice-connectors", "[" * 100_000 + "]" * 100_000)
    assert 400 <= r.status_code < 500
    # A raw socket that sends half a request and hangs up.
    host, port = srv.endpoint.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(b"POST /voice-connectors HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"Na")
    srv.assert_healthy()
    assert srv.signed("GET", "/voice-connectors").status_code == 200


def test_throttling_per_access_key(start_server):
    """With --api-rate-limit 1, a burst past the bucket gets 429 with the service's throttling
    exception, and requests are admitted again after a pause."""
    s = start_server("sqlite", ["--api-rate-limit", "1"])
    statuses, kinds = [], set()
    for _ in range(12):
        r = s.signed("GET", "/voice-connectors")
        statuses.append(r.status_code)
        if r.status_code == 429:
            kinds.add(r.headers["x-amzn-ErrorType"])
            assert r.headers.get("Retry-After")
    assert 200 in statuses and 429 in statuses, statuses
    assert kinds == {"ThrottledClientException"}
    r = s.signed("GET", f"/meetings/{uuid.uuid4()}")
    if r.status_code == 429:
        assert r.headers["x-amzn-ErrorType"] == "ThrottlingException"
    import time

    time.sleep(1.5)
    assert s.signed("GET", "/voice-connectors").status_code == 200
    s.assert_healthy()
