//! What protects the HTTP server from browsers and from overload: security headers (a
//! Content-Security-Policy that allows only the dashboard's own script and style), the `Host`
//! check against DNS rebinding, the caps on connections, requests and event streams, and the
//! header and request timeouts.

use std::sync::{Arc, OnceLock};
use std::time::Duration as StdDuration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

/// How long a client may take to send a request's headers (also the idle time allowed between
/// requests on a kept-alive connection).
pub const HEADER_TIMEOUT: StdDuration = StdDuration::from_secs(10);
/// How long a request may take until its response starts (an event stream's response starts at
/// once).
pub const REQUEST_TIMEOUT: StdDuration = StdDuration::from_secs(10);

/// Caps of `[http]`, and the timeouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Open connections; more are closed at once.
    pub max_connections: usize,
    /// Requests handled at once; more get 503.
    pub max_requests: usize,
    /// Event streams (`/v1/stream`) open at once; more get 503.
    pub max_streams: usize,
    /// [`HEADER_TIMEOUT`] (shorter in tests).
    pub header_timeout: StdDuration,
    /// [`REQUEST_TIMEOUT`] (shorter in tests).
    pub request_timeout: StdDuration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 256,
            max_requests: 64,
            max_streams: 32,
            header_timeout: HEADER_TIMEOUT,
            request_timeout: REQUEST_TIMEOUT,
        }
    }
}

/// The semaphores of [`Limits`].
#[derive(Clone)]
pub struct Permits {
    /// Connections.
    pub connections: Arc<Semaphore>,
    /// Requests in progress.
    pub requests: Arc<Semaphore>,
    /// Event streams.
    pub streams: Arc<Semaphore>,
    /// The limits they were sized by.
    pub limits: Limits,
}

impl Permits {
    /// Semaphores sized by `limits`.
    pub fn new(limits: Limits) -> Permits {
        Permits {
            connections: Arc::new(Semaphore::new(limits.max_connections)),
            requests: Arc::new(Semaphore::new(limits.max_requests)),
            streams: Arc::new(Semaphore::new(limits.max_streams)),
            limits,
        }
    }
}

/// 503 with a JSON error body and `Retry-After`.
pub fn busy(message: &str) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "1")],
        axum::Json(serde_json::json!({ "error": message })),
    )
        .into_response()
}

/// Caps requests in progress and bounds the time until their response starts.
pub async fn limit(State(permits): State<Permits>, request: Request, next: Next) -> Response {
    let Ok(_permit) = permits.requests.clone().try_acquire_owned() else {
        return busy("too many requests in progress (http.max_requests); retry shortly");
    };
    let timeout = permits.limits.request_timeout;
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => (
            StatusCode::GATEWAY_TIMEOUT,
            axum::Json(serde_json::json!({
                "error": format!("the request took longer than {} ms", timeout.as_millis())
            })),
        )
            .into_response(),
    }
}

/// The host names a request's `Host` header may name, or `None` for any.
#[derive(Clone, Debug)]
pub struct HostCheck(pub Option<Arc<[String]>>);

impl HostCheck {
    /// Without a token on a loopback address, only loopback names and `extra` (the advertised
    /// URL's host): a page of another site that rebinds its DNS name to 127.0.0.1 sends its own
    /// name. With a token (or on another address) any.
    pub fn new(has_token: bool, loopback: bool, extra: Option<String>) -> HostCheck {
        if has_token || !loopback {
            return HostCheck(None);
        }
        let mut names: Vec<String> = ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
        names.extend(extra);
        HostCheck(Some(names.into()))
    }

    /// Whether a `Host` header value is allowed (no header: allowed, browsers always send one).
    pub fn allows(&self, host: Option<&str>) -> bool {
        let (Some(names), Some(host)) = (&self.0, host) else {
            return true;
        };
        let host = host.to_ascii_lowercase();
        let name = match host.strip_prefix('[') {
            Some(v6) => v6.split_once(']').map_or("", |(h, _)| h),
            None => host.rsplit_once(':').map_or(host.as_str(), |(h, _)| h),
        };
        names.iter().any(|n| n == name)
    }
}

/// Refuses requests whose `Host` header [`HostCheck`] does not allow.
pub async fn check_host(State(check): State<HostCheck>, request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .map(|v| v.to_str().unwrap_or("\u{fffd}"));
    if check.allows(host) {
        return next.run(request).await;
    }
    (
        StatusCode::FORBIDDEN,
        axum::Json(serde_json::json!({
            "error": "this server has no token and answers only to loopback host names \
                      (localhost, 127.0.0.1, [::1]) and its advertised URL's host"
        })),
    )
        .into_response()
}

/// The SHA-256 source expression of the text between the first `<{tag}>` and `</{tag}>`.
fn inline_hash(html: &str, tag: &str) -> String {
    let open = format!("<{tag}>");
    let start = html.find(&open).map_or(0, |i| i + open.len());
    let end = html[start..]
        .find(&format!("</{tag}>"))
        .map_or(html.len(), |i| start + i);
    let digest = Sha256::digest(&html.as_bytes()[start..end]);
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// The Content-Security-Policy of every response: nothing but the dashboard's own inline script
/// and style (by hash), and requests to this server.
pub fn content_security_policy() -> &'static str {
    static CSP: OnceLock<String> = OnceLock::new();
    CSP.get_or_init(|| {
        let html = super::http::DASHBOARD_HTML;
        format!(
            "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; img-src data:; \
             base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            inline_hash(html, "script"),
            inline_hash(html, "style")
        )
    })
}

/// Adds the security headers to every response.
pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let csp = HeaderValue::from_static(content_security_policy());
    headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// Serves connections from `listener` until the process ends: at most `permits.connections` at
/// once (more are closed at once), each with the header timeout.
pub async fn accept_loop(listener: tokio::net::TcpListener, app: axum::Router, permits: Permits) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // Out of file descriptors and the like: wait instead of spinning.
                tracing::warn!(error = %e, "HTTP accept failed");
                tokio::time::sleep(StdDuration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = permits.connections.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let service = TowerToHyperService::new(app.clone());
        let header_timeout = permits.limits.header_timeout;
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "HTTP connection ended");
            }
            drop(permit);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_checked_only_without_a_token_on_loopback() {
        let check = HostCheck::new(false, true, Some("goalpost-0".into()));
        for ok in [
            "localhost:8080",
            "127.0.0.1",
            "[::1]:80",
            "LOCALHOST",
            "goalpost-0:1",
        ] {
            assert!(check.allows(Some(ok)), "{ok}");
        }
        for bad in [
            "evil.example:8080",
            "localhost.evil.example",
            "[::2]:80",
            "127.0.0.1.nip.io",
        ] {
            assert!(!check.allows(Some(bad)), "{bad}");
        }
        assert!(HostCheck::new(true, true, None).allows(Some("evil.example")));
        assert!(HostCheck::new(false, false, None).allows(Some("evil.example")));
    }

    #[test]
    fn the_policy_hashes_the_dashboards_script_and_style() {
        let csp = content_security_policy();
        let html = super::super::http::DASHBOARD_HTML;
        let script = &html[html.find("<script>").unwrap() + 8..html.find("</script>").unwrap()];
        let digest = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(script));
        assert!(
            csp.contains(&format!("script-src 'sha256-{digest}'")),
            "{csp}"
        );
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        // The page carries no inline style attributes or handlers the policy would block.
        assert!(
            !html.contains("style=\""),
            "inline style attribute in the dashboard"
        );
        assert!(!html.contains(" onclick=") && !html.contains(" onload="));
    }
}
