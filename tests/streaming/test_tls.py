"""Call streams over TLS (issue 19): a wss:// consumer and an https notify endpoint whose
certificate comes from a test CA the server trusts through `serve --sma-ca-file` (the
https client of functions and S3, `sma::tls`). A consumer whose certificate is from a CA
the server does not trust fails the stream (FAILED, the reason naming the certificate),
not the call.
"""

from __future__ import annotations

from test_streaming import joined, streaming_on


def test_wss_consumer_and_https_notify(st_server, st_callers, st_tones, st_tools, st_cert):
    join = st_server.provision(require_encryption=False)
    with st_tools.Sink(tls=st_cert) as sink, st_tools.Events(tls=st_cert) as events:
        assert sink.url.startswith("wss://") and events.url.startswith("https://")
        streaming_on(st_server, join.voice_connector_id, "--url", sink.url, "--notify-url", events.url)
        joined(st_callers.start(join.host, join.token, "udp", play=st_tones[440], duration=3.0, name="a").result())
        stream = sink.wait_stop()
        events.wait_for("ENDED")
    assert stream.start["voiceConnectorId"] == join.voice_connector_id
    rate = stream.start["sampleRate"]
    assert stream.frames[0] == stream.frames[1] > 50, stream.frames
    assert st_tools.level_db(stream.tracks[0][rate // 2:], rate, 440) > -30
    assert stream.stop["framesSent"] == stream.frames[0] + stream.frames[1], stream.stop
    assert events.statuses() == ["STARTED", "ENDED"], events.events
    assert all(e["detail"]["callId"] == stream.start["callId"] for e in events.events)


def test_untrusted_consumer_certificate_fails_the_stream(
        st_server, st_callers, st_tones, st_tools, st_cert, tmp_path):
    join = st_server.provision(require_encryption=False)
    stranger = st_tools.Certificate(tmp_path / "certs", "stranger", "IP:127.0.0.1")
    with st_tools.Sink(tls=stranger) as sink, st_tools.Events(tls=st_cert) as events:
        streaming_on(st_server, join.voice_connector_id, "--url", sink.url, "--notify-url", events.url)
        res = st_callers.start(join.host, join.token, "udp", play=st_tones[440], duration=3.0, name="a").result()
        failed = events.wait_for("FAILED")
    joined(res)
    assert res["rx_packets"] > 0, res
    reason = failed["detail"]["failureReason"]
    assert "certificate" in reason.lower(), reason
    assert all(s.start is None for s in sink.streams), "a start message went to an untrusted consumer"
