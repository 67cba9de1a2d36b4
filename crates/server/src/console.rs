//! The web console at `/console` on the API port: its page, stylesheet and bundle
//! (console/, built by console/build.sh and committed), embedded in the binary so serving
//! it needs nothing at run time. The page talks to this server's own API, signed with
//! SigV4, so its Content-Security-Policy allows this origin alone.

use std::sync::OnceLock;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use sha2::{Digest, Sha256};

/// Scripts, styles, images and requests from this origin only; no plugins, no framing.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; object-src 'none'; \
    base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// One embedded file.
struct Asset {
    body: &'static [u8],
    content_type: &'static str,
    etag: OnceLock<String>,
}

impl Asset {
    const fn new(body: &'static [u8], content_type: &'static str) -> Self {
        Asset {
            body,
            content_type,
            etag: OnceLock::new(),
        }
    }

    /// A strong validator: the first 16 bytes of the body's SHA-256, quoted.
    fn etag(&self) -> &str {
        self.etag
            .get_or_init(|| format!("\"{}\"", hex::encode(&Sha256::digest(self.body)[..16])))
    }

    /// The file, or 304 when `If-None-Match` names its ETag. Browsers revalidate every
    /// use (`no-cache`), so a new binary's console is picked up at once, and an unchanged
    /// one costs a 304.
    fn respond(&self, req_headers: &HeaderMap) -> Response {
        let etag = self.etag();
        let fresh = req_headers
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| {
                let t = t.trim();
                t == "*" || t.trim_start_matches("W/") == etag
            });
        let mut resp = if fresh {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            let mut r = self.body.into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(self.content_type),
            );
            r
        };
        let h = resp.headers_mut();
        if let Ok(v) = HeaderValue::from_str(etag) {
            h.insert(header::ETAG, v);
        }
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        resp
    }
}

static INDEX: Asset = Asset::new(
    include_bytes!("../../../console/index.html"),
    "text/html; charset=utf-8",
);
static SCRIPT: Asset = Asset::new(
    include_bytes!("../../../console/dist/console.js"),
    "text/javascript; charset=utf-8",
);
static STYLE: Asset = Asset::new(
    include_bytes!("../../../console/console.css"),
    "text/css; charset=utf-8",
);

/// `GET /console` (and `/console/`), `/console/console.js` and `/console/console.css`.
/// Merged into the API's router; other paths under `/console/` fall through to it (an AWS
/// error answer, as for any unknown path).
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/console", serve(&INDEX))
        .route("/console/", serve(&INDEX))
        .route("/console/console.js", serve(&SCRIPT))
        .route("/console/console.css", serve(&STYLE))
}

fn serve<S: Clone + Send + Sync + 'static>(asset: &'static Asset) -> MethodRouter<S> {
    get(move |h: HeaderMap| async move { asset.respond(&h) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get(path: &str, if_none_match: Option<&str>) -> Response {
        let mut req = Request::get(path);
        if let Some(t) = if_none_match {
            req = req.header(header::IF_NONE_MATCH, t);
        }
        routes::<()>()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn serves_each_file_with_its_type_policy_and_validator() {
        for (path, ctype) in [
            ("/console", "text/html; charset=utf-8"),
            ("/console/", "text/html; charset=utf-8"),
            ("/console/console.js", "text/javascript; charset=utf-8"),
            ("/console/console.css", "text/css; charset=utf-8"),
        ] {
            let r = get(path, None).await;
            assert_eq!(r.status(), StatusCode::OK, "{path}");
            let h = r.headers();
            assert_eq!(h[header::CONTENT_TYPE], ctype, "{path}");
            assert_eq!(h[header::CONTENT_SECURITY_POLICY], CSP);
            assert_eq!(h[header::CACHE_CONTROL], "no-cache");
            assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
            assert!(h[header::ETAG].to_str().unwrap().starts_with('"'));
        }
        let page = axum::body::to_bytes(get("/console", None).await.into_body(), 1 << 20)
            .await
            .unwrap();
        let page = String::from_utf8(page.to_vec()).unwrap();
        assert!(page.contains(r#"src="/console/console.js""#), "{page}");
        assert!(!page.contains("<script>"), "no inline script under the CSP");
    }

    #[tokio::test]
    async fn a_matching_etag_is_not_modified_and_another_is_the_file() {
        let etag = get("/console/console.js", None).await.headers()[header::ETAG]
            .to_str()
            .unwrap()
            .to_string();
        let same = get("/console/console.js", Some(&format!("\"x\", {etag}"))).await;
        assert_eq!(same.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(same.headers()[header::ETAG], etag.as_str());
        let body = axum::body::to_bytes(same.into_body(), 16).await.unwrap();
        assert!(body.is_empty());
        let other = get("/console/console.js", Some("\"0000\"")).await;
        assert_eq!(other.status(), StatusCode::OK);
        assert_eq!(
            other.headers()[header::CONTENT_LENGTH],
            SCRIPT.body.len().to_string()
        );
    }
}
