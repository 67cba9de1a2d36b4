//! Streaming status events POSTed to the operator's notify URL
//! (`http[s]://HOST[:PORT][/PATH]`; https through the process's TLS client, `sma::tls`),
//! one attempt of at most [`TIMEOUT`] each: a notify endpoint that is down loses its
//! events (counted in `vc_stream_notify_failed_total`), never delays the call or its stream.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

use crate::sma::tls::Origin;

/// How long one POST may take, connect to answer.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// A notify URL split for a request: where to connect (and TLS or not), the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    pub origin: Origin,
    pub path: String,
}

impl HttpUrl {
    /// Parses `http://HOST[:PORT][/PATH]` or `https://…`; the error says what is wrong.
    pub fn parse(url: &str) -> Result<HttpUrl, String> {
        let (origin, rest) = Origin::parse(url).map_err(|why| format!("{url}: {why}"))?;
        let path = match rest {
            "" => "/".to_string(),
            r if r.starts_with('/') => r.to_string(),
            r => format!("/{r}"),
        };
        if path.contains(char::is_whitespace) {
            return Err(format!("{url}: the path must not contain spaces"));
        }
        Ok(HttpUrl { origin, path })
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
        tracing::info!(url = %url.origin.authority, error = %failure, "streaming status event not delivered");
    });
}

async fn once(url: &HttpUrl, event: String) -> Result<(), String> {
    let stream = crate::sma::tls::shared()
        .open(&url.origin)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = hyper::Request::post(url.path.as_str())
        .header(hyper::header::HOST, url.origin.authority.as_str())
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
            (
                u.origin.connect.as_str(),
                u.origin.authority.as_str(),
                u.path.as_str()
            ),
            ("127.0.0.1:9000", "127.0.0.1:9000", "/events")
        );
        assert_eq!(u.origin.tls_name, None);
        let u = HttpUrl::parse("http://hooks.example").unwrap();
        assert_eq!(
            (u.origin.connect.as_str(), u.path.as_str()),
            ("hooks.example:80", "/")
        );
        let u = HttpUrl::parse("https://hooks.example/in?k=1").unwrap();
        assert_eq!(
            (u.origin.connect.as_str(), u.path.as_str()),
            ("hooks.example:443", "/in?k=1")
        );
        assert_eq!(u.origin.tls_name.as_deref(), Some("hooks.example"));
        assert!(HttpUrl::parse("ftp://hooks.example").is_err());
        assert!(HttpUrl::parse("http://user@hooks.example").is_err());
        assert!(HttpUrl::parse("http:///x").is_err());
    }
}
