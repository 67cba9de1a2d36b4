//! UDP and TCP on real loopback sockets.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use sip_transport::{
    Direction, Limits, MessageLog, Outbound, SendError, Transport, TransportConfig,
};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};

#[tokio::test]
async fn udp_and_tcp_share_the_port() {
    let (t, _rx) = bind(config()).await;
    let udp = t.local_addr(Transport::Udp).unwrap();
    let tcp = t.local_addr(Transport::Tcp).unwrap();
    assert_ne!(udp.port(), 0);
    assert_eq!(udp, tcp);
    assert_eq!(t.local_addr(Transport::Tls), None);
    assert!(t.dev_ca_path().is_none());
}

#[tokio::test]
async fn udp_round_trip() {
    let (t, mut rx) = bind(config()).await;
    let server = t.local_addr(Transport::Udp).unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();

    // Keep-alives are swallowed: the next message delivered is the real one.
    client.send_to(b"\r\n\r\n", server).await.unwrap();
    let req = request("OPTIONS", 1, "");
    client.send_to(&req, server).await.unwrap();
    let got = recv(&mut rx).await;
    assert_eq!(got.transport, Transport::Udp);
    assert_eq!(got.remote, client.local_addr().unwrap());
    assert_eq!(got.local, server);
    assert_eq!(got.conn, None);
    assert_eq!(&got.bytes[..], &req[..]);

    let sent = t
        .send(Outbound::reply_to(&got, Bytes::from(response(1))))
        .await
        .unwrap();
    assert_eq!(sent.conn, None);
    let mut buf = vec![0u8; 65536];
    let (n, from) = tokio::time::timeout(PATIENCE, client.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(from, server);
    assert_eq!(&buf[..n], &response(1)[..]);
}

#[tokio::test]
async fn udp_large_datagram_and_limit() {
    let limits = Limits {
        max_message_size: 40_000,
        ..Limits::default()
    };
    let (t, mut rx) = bind_with(limits).await;
    let server = t.local_addr(Transport::Udp).unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();

    // Over the limit: dropped. Under it but far above a typical MTU: delivered whole.
    let too_big = request("MESSAGE", 1, &"x".repeat(45_000));
    client.send_to(&too_big, server).await.unwrap();
    let big = request("MESSAGE", 2, &"y".repeat(39_000));
    client.send_to(&big, server).await.unwrap();
    let got = recv(&mut rx).await;
    assert_eq!(&got.bytes[..], &big[..]);

    let err = t
        .send(Outbound::to(
            Transport::Udp,
            client.local_addr().unwrap(),
            Bytes::from(too_big),
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::TooLarge { limit: 40_000, .. }));
}

#[tokio::test]
async fn tcp_framing_two_in_one_segment_and_split_message_with_body() {
    let (t, mut rx) = bind(config()).await;
    let server = t.local_addr(Transport::Tcp).unwrap();
    let mut client = TcpStream::connect(server).await.unwrap();
    let me = client.local_addr().unwrap();

    let a = request("OPTIONS", 1, "");
    let b = request("MESSAGE", 2, "hello\r\n\r\nworld");
    let mut both = b"\r\n".to_vec(); // a stray CRLF before the start-line (RFC 3261 §7.5)
    both.extend_from_slice(&a);
    both.extend_from_slice(&b);
    client.write_all(&both).await.unwrap();

    let got_a = recv(&mut rx).await;
    let got_b = recv(&mut rx).await;
    assert_eq!(&got_a.bytes[..], &a[..]);
    assert_eq!(&got_b.bytes[..], &b[..]);
    assert_eq!(got_a.transport, Transport::Tcp);
    assert_eq!(got_a.remote, me);
    assert!(got_a.conn.is_some());
    assert_eq!(got_a.conn, got_b.conn);

    // One message with a body, written in three pieces: inside the header, across the blank
    // line, and inside the body; compact `l` header in odd case.
    let body = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\n";
    let c = format!(
        "INVITE sip:x@y SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK3\r\nL : {}\r\nContent-Type: application/sdp\r\n\r\n{body}",
        body.len()
    )
    .into_bytes();
    let blank = c.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    for piece in [
        &c[..20],
        &c[20..blank + 2],
        &c[blank + 2..blank + 10],
        &c[blank + 10..],
    ] {
        client.write_all(piece).await.unwrap();
        client.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let got_c = recv(&mut rx).await;
    assert_eq!(&got_c.bytes[..], &c[..]);
    assert!(got_c.bytes.ends_with(body.as_bytes()));
}

#[tokio::test]
async fn tcp_crlf_keepalive_gets_single_crlf_pong() {
    let (t, mut rx) = bind(config()).await;
    let mut client = TcpStream::connect(t.local_addr(Transport::Tcp).unwrap())
        .await
        .unwrap();
    client.write_all(b"\r\n\r\n").await.unwrap();
    assert_eq!(read_exact(&mut client, 2).await, b"\r\n");
    // A pong from the client (single CRLF) is ignored; the ping was not passed up.
    client.write_all(b"\r\n").await.unwrap();
    let req = request("OPTIONS", 7, "");
    client.write_all(&req).await.unwrap();
    assert_eq!(&recv(&mut rx).await.bytes[..], &req[..]);
}

#[tokio::test]
async fn tcp_missing_content_length_closes_connection() {
    let (t, mut rx) = bind(config()).await;
    let mut client = TcpStream::connect(t.local_addr(Transport::Tcp).unwrap())
        .await
        .unwrap();
    client
        .write_all(b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n\r\n")
        .await
        .unwrap();
    assert!(read_to_close(&mut client).await.is_empty());
    assert!(rx.try_recv().is_err(), "nothing passed up");
}

#[tokio::test]
async fn tcp_limits_close_connection() {
    let limits = Limits {
        max_message_size: 1000,
        max_line_length: 200,
        ..Limits::default()
    };
    let (t, _rx) = bind_with(limits).await;
    let server = t.local_addr(Transport::Tcp).unwrap();

    let mut c1 = TcpStream::connect(server).await.unwrap();
    c1.write_all(&request("MESSAGE", 1, &"z".repeat(2000)))
        .await
        .unwrap();
    read_to_close(&mut c1).await;

    let mut c2 = TcpStream::connect(server).await.unwrap();
    c2.write_all(format!("OPTIONS sip:{} SIP/2.0\r\n", "a".repeat(300)).as_bytes())
        .await
        .unwrap();
    read_to_close(&mut c2).await;
}

#[tokio::test]
async fn idle_connection_is_closed() {
    let limits = Limits {
        idle_timeout: Duration::from_millis(200),
        ..Limits::default()
    };
    let (t, _rx) = bind_with(limits).await;
    let mut client = TcpStream::connect(t.local_addr(Transport::Tcp).unwrap())
        .await
        .unwrap();
    assert!(read_to_close(&mut client).await.is_empty());
}

#[tokio::test]
async fn per_source_connection_limit() {
    let limits = Limits {
        max_connections_per_ip: 2,
        ..Limits::default()
    };
    let (t, mut rx) = bind_with(limits).await;
    let server = t.local_addr(Transport::Tcp).unwrap();

    let mut c1 = TcpStream::connect(server).await.unwrap();
    let mut c2 = TcpStream::connect(server).await.unwrap();
    // Make sure both are accepted and registered before the third arrives.
    c1.write_all(&request("OPTIONS", 1, "")).await.unwrap();
    recv(&mut rx).await;
    c2.write_all(&request("OPTIONS", 2, "")).await.unwrap();
    recv(&mut rx).await;
    assert_eq!(t.connections_with("127.0.0.1".parse().unwrap()), 2);

    let mut c3 = TcpStream::connect(server).await.unwrap();
    assert!(read_to_close(&mut c3).await.is_empty(), "third is refused");

    // The first two still work; closing one frees a slot.
    c1.write_all(&request("OPTIONS", 3, "")).await.unwrap();
    assert!(recv(&mut rx).await.bytes.starts_with(b"OPTIONS"));
    drop(c2);
    let mut c4 = loop {
        let mut c = TcpStream::connect(server).await.unwrap();
        c.write_all(&request("OPTIONS", 4, "")).await.unwrap();
        // Until the server notices c2's close, the new one may still be refused.
        match tokio::time::timeout(Duration::from_millis(500), rx.recv()).await {
            Ok(Some(got)) => {
                assert!(got.bytes.starts_with(b"OPTIONS"));
                break c;
            }
            _ => continue,
        }
    };
    c4.write_all(&request("OPTIONS", 5, "")).await.unwrap();
    recv(&mut rx).await;
}

#[tokio::test]
async fn tcp_connection_reuse_for_responses_and_requests() {
    let (a, mut a_rx) = bind(config()).await;
    let (b, mut b_rx) = bind(config()).await;
    let a_addr = a.local_addr(Transport::Tcp).unwrap();
    let b_addr = b.local_addr(Transport::Tcp).unwrap();

    // A opens a connection to B with a request.
    let sent = a
        .send(Outbound::to(
            Transport::Tcp,
            b_addr,
            Bytes::from(request("OPTIONS", 1, "")),
        ))
        .await
        .unwrap();
    let a_conn = sent.conn.expect("connection id");
    assert_eq!(sent.remote, b_addr);
    let req = recv(&mut b_rx).await;
    assert_eq!(req.remote, sent.local);

    // B answers on the connection the request came in on (RFC 3261 §18.2.2).
    let reply = b
        .send(Outbound::reply_to(&req, Bytes::from(response(1))))
        .await
        .unwrap();
    assert_eq!(reply.conn, req.conn);
    let resp = recv(&mut a_rx).await;
    assert_eq!(resp.conn, Some(a_conn));
    assert_eq!(resp.remote, b_addr);
    assert_eq!(&resp.bytes[..], &response(1)[..]);

    // Without a connection id, A finds its open connection to B by address.
    let again = a
        .send(Outbound::to(
            Transport::Tcp,
            b_addr,
            Bytes::from(request("OPTIONS", 2, "")),
        ))
        .await
        .unwrap();
    assert_eq!(again.conn, Some(a_conn));
    assert_eq!(recv(&mut b_rx).await.conn, req.conn);

    // A stale connection id falls back to the address: B has no other connection to A's
    // ephemeral port and nobody listens there, so a new connection is tried and refused.
    assert!(b.close(req.conn.unwrap()));
    assert!(!b.close(req.conn.unwrap()));
    let err = b
        .send(Outbound::reply_to(&req, Bytes::from(response(2))))
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Connect { .. }), "{err:?}");

    // B reaching A's listening address opens a new connection.
    let fresh = b
        .send(Outbound::to(
            Transport::Tcp,
            a_addr,
            Bytes::from(request("OPTIONS", 3, "")),
        ))
        .await
        .unwrap();
    assert_ne!(fresh.conn, req.conn);
    let got = recv(&mut a_rx).await;
    assert_eq!(got.remote, fresh.local);
    assert_eq!(b.connection_count(), 1);
}

#[tokio::test]
async fn message_log_sees_both_directions() {
    type Entry = (Direction, Transport, SocketAddr, SocketAddr, Vec<u8>);
    let seen: Arc<Mutex<Vec<Entry>>> = Arc::default();
    let sink = Arc::clone(&seen);
    let mut c = TransportConfig::new(loopback());
    c.message_log = Some(MessageLog::new(move |m| {
        sink.lock().unwrap().push((
            m.direction,
            m.transport,
            m.local,
            m.remote,
            m.bytes.to_vec(),
        ));
    }));
    let (t, mut rx) = bind(c).await;
    let server = t.local_addr(Transport::Tcp).unwrap();
    let mut client = TcpStream::connect(server).await.unwrap();
    let req = request("OPTIONS", 1, "");
    client.write_all(b"\r\n\r\n").await.unwrap();
    client.write_all(&req).await.unwrap();
    let got = recv(&mut rx).await;
    t.send(Outbound::reply_to(&got, Bytes::from(response(1))))
        .await
        .unwrap();
    let me = client.local_addr().unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![
            (Direction::Inbound, Transport::Tcp, server, me, req),
            (Direction::Outbound, Transport::Tcp, server, me, response(1)),
        ]
    );
}

#[tokio::test]
async fn shutdown_closes_connections_and_refuses_sends() {
    let (t, _rx) = bind(config()).await;
    let mut client = TcpStream::connect(t.local_addr(Transport::Tcp).unwrap())
        .await
        .unwrap();
    t.shutdown();
    read_to_close(&mut client).await;
    let err = t
        .send(Outbound::to(
            Transport::Udp,
            "127.0.0.1:9".parse().unwrap(),
            Bytes::from_static(b"x"),
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Shutdown));
}
