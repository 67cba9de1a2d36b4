//! Streaming status events POSTed to the operator's notify URL (`http://HOST[:PORT][/PATH]`),
//! one attempt of at most [`TIMEOUT`] each: a notify endpoint that is down loses its
//! events (counted in `vc_stream_notify_failed_total`), never delays the call or its stream.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// How long one POST may take, connect to answer.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// An `http://` URL split for a request: where to connect, the Host header, the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    pub connect: String,
    pub authority: String,
    pub path: String,
}

impl HttpUrl {
    /// Parses `http://HOST[:PORT][/PATH]`; the error says what is wrong.
    pub fn parse(url: &str) -> Result<HttpUrl, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("{url} must start with http://"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty()
            || authority.contains('@')
            || authority.contains(char::is_whitespace)
        {
            return Err(format!("{url} has no usable host"));
        }
        let has_port = !authority.ends_with(']')
            && authority
                .rsplit_once(':')
                .is_some_and(|(_, p)| p.parse::<u16>().is_ok());
        let connect = if has_port {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        Ok(HttpUrl {
            connect,
            authority: authority.to_string(),
            path: path.to_string(),
        })
    }
}

/// POSTs `event` (JSON) to `url`; counts a failure, never waits past [`TIMEOUT`].
pub fn post(url: HttpUrl, event: String, metrics: Arc<api::metrics::Metrics>) {
    tokio::spawn(async move {
        let outcome = tokio::time::timeout(TIMEOUT, once(&url, event)).await;
        let failure = match outcome {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e,
            Err(_) => format!("no answer within {} s", TIMEOUT.as_secs()),
        };
        metrics.counter_add("vc_stream_notify_failed_total", "", 1);
        tracing::info!(url = %url.authority, error = %failure, "streaming status event not delivered");
    });
}

async fn once(url: &HttpUrl, event: String) -> Result<(), String> {
    let stream = TcpStream::connect(&url.connect)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = hyper::Request::post(url.path.as_str())
        .header(hyper::header::HOST, url.authority.as_str())
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(event)))
        .map_err(|e| e.to_string())?;
    let result = sender.send_request(req).await;
    driver.abort();
    let resp = result.map_err(|e| format!("request: {e}"))?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!("HTTP {}", resp.status()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_for_a_request() {
        let u = HttpUrl::parse("http://127.0.0.1:9000/events").unwrap();
        assert_eq!(
            (u.connect.as_str(), u.authority.as_str(), u.path.as_str()),
            ("127.0.0.1:9000", "127.0.0.1:9000", "/events")
        );
        let u = HttpUrl::parse("http://hooks.example").unwrap();
        assert_eq!(
            (u.connect.as_str(), u.path.as_str()),
            ("hooks.example:80", "/")
        );
        assert!(HttpUrl::parse("https://hooks.example").is_err());
        assert!(HttpUrl::parse("http://user@hooks.example").is_err());
        assert!(HttpUrl::parse("http:///x").is_err());
    }
}
