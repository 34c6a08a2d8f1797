//! Who may ask: the bearer token (header or the dashboard's cookie) and the peer secret.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use serde::Deserialize;

use super::{paths, AppState, ErrorBody, QueryParams};

/// The cookie that carries the token for the dashboard (browsers cannot add headers to page
/// loads and event streams).
const TOKEN_COOKIE: &str = "goalpost_token";
/// A bearer token. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// A token from its text (surrounding whitespace removed); `None` when empty.
    pub fn new(text: &str) -> Option<Token> {
        let t = text.trim();
        (!t.is_empty()).then(|| Token(t.to_string()))
    }

    /// The secret itself, for sending it to peers.
    pub fn expose(&self) -> &str {
        &self.0
    }

    fn matches(&self, candidate: &str) -> bool {
        // Constant time in the candidate's content.
        let (a, b) = (self.0.as_bytes(), candidate.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

fn cookie_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == TOKEN_COOKIE)
        .map(|(_, v)| v)
}

#[derive(Deserialize)]
pub(super) struct TokenParam {
    token: Option<String>,
    scope: Option<String>,
}

/// Whether a request is one a peer makes: a `scope=local` GET of a goal's windows or of the
/// attainment events.
fn is_peer_query(request: &Request, scope: Option<&str>) -> bool {
    let path = request.uri().path();
    request.method() == axum::http::Method::GET
        && scope == Some("local")
        && (path == paths::ATTAINMENTS || path.starts_with("/v1/goals/"))
}

/// Bearer token check: `Authorization: Bearer <token>`, or the dashboard's cookie; the peer
/// secret only for [`is_peer_query`]. Opening the dashboard as `/?token=<token>` sets that
/// cookie (`SameSite=Lax`; `Secure` when the request came through HTTPS, as
/// `X-Forwarded-Proto` says) and redirects to `/`.
pub(super) async fn auth(
    State(state): State<AppState>,
    QueryParams(param): QueryParams<TokenParam>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = &state.token else {
        return next.run(request).await;
    };
    let headers = request.headers();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let peer = state
        .peer_token
        .as_ref()
        .is_some_and(|p| bearer.is_some_and(|b| p.matches(b)))
        && is_peer_query(&request, param.scope.as_deref());
    if peer
        || bearer.is_some_and(|b| token.matches(b))
        || cookie_token(headers).is_some_and(|c| token.matches(c))
    {
        return next.run(request).await;
    }
    if request.uri().path() == paths::DASHBOARD {
        if let Some(t) = param.token.as_deref().filter(|t| token.matches(t)) {
            let https = headers
                .get("x-forwarded-proto")
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
            let secure = if https { "; Secure" } else { "" };
            let mut response = Redirect::to(paths::DASHBOARD).into_response();
            // Lax, not Strict: a link to `/?token=` from another site (a wiki, a chat) is a
            // cross-site navigation, and a Strict cookie would not be sent on the redirect that
            // follows. Lax still withholds it from cross-site subrequests and POSTs.
            let cookie = format!("{TOKEN_COOKIE}={t}; HttpOnly; SameSite=Lax; Path=/{secure}");
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, v);
            }
            return response;
        }
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        Json(ErrorBody {
            error: "a bearer token is required: send `Authorization: Bearer <token>`".into(),
        }),
    )
        .into_response()
}
