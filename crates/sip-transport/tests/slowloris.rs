//! The whole-message deadline on streams (issue 14, slowloris): a peer that dribbles a
//! message is closed once `Limits::message_timeout` has passed since its first byte, even
//! though bytes keep coming (the idle timer alone would restart on each); pauses between
//! whole messages and keep-alives start no clock. Real sockets on 127.0.0.1.

mod common;

use std::time::Duration;

use common::*;
use sip_transport::{Limits, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn limits() -> Limits {
    Limits {
        message_timeout: Duration::from_millis(400),
        idle_timeout: Duration::from_secs(60),
        ..Limits::default()
    }
}

#[tokio::test]
async fn a_message_dribbled_a_byte_at_a_time_is_closed() {
    let (t, mut rx) = bind_with(limits()).await;
    let server = t.local_addr(Transport::Tcp).unwrap();
    let stream = TcpStream::connect(server).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let msg = request("OPTIONS", 1, "");
    // One byte every 40 ms: the whole message would take about 10 s, the idle timer
    // (60 s) never fires; the message deadline (0.4 s) must.
    let len = msg.len();
    let dribble = tokio::spawn(async move {
        let mut sent = 0;
        for b in msg {
            if writer.write_all(&[b]).await.is_err() {
                break;
            }
            sent += 1;
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        sent
    });
    let got = read_to_close(&mut reader).await;
    assert!(got.is_empty(), "nothing answered: {got:?}");
    let sent = tokio::time::timeout(PATIENCE, dribble)
        .await
        .unwrap()
        .unwrap();
    assert!(
        sent < len,
        "closed before the message was whole ({sent} of {len} bytes)"
    );
    assert!(rx.try_recv().is_err(), "nothing passed up");
    assert_eq!(t.connection_count(), 0);
}

#[tokio::test]
async fn pauses_between_messages_and_keepalives_start_no_clock() {
    let (t, mut rx) = bind_with(limits()).await;
    let server = t.local_addr(Transport::Tcp).unwrap();
    let mut c = TcpStream::connect(server).await.unwrap();
    let pause = Duration::from_millis(900); // over twice the message deadline

    c.write_all(&request("OPTIONS", 1, "")).await.unwrap();
    assert_eq!(
        recv(&mut rx).await.bytes.as_ref(),
        request("OPTIONS", 1, "")
    );
    tokio::time::sleep(pause).await;

    // An RFC 5626 ping is answered and starts no message; so does a lone CRLF.
    c.write_all(b"\r\n\r\n").await.unwrap();
    let mut pong = [0u8; 2];
    tokio::time::timeout(PATIENCE, c.read_exact(&mut pong))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&pong, b"\r\n");
    c.write_all(b"\r\n").await.unwrap();
    tokio::time::sleep(pause).await;

    // A message sent in two halves within the deadline is whole and delivered; the
    // connection is still the same one.
    let msg = request("MESSAGE", 2, "hello");
    let (a, b) = msg.split_at(msg.len() / 2);
    c.write_all(a).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    c.write_all(b).await.unwrap();
    let got = recv(&mut rx).await;
    assert_eq!(got.bytes.as_ref(), &msg[..]);
    assert_eq!(t.connection_count(), 1);
}
