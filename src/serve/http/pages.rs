//! Readiness, metrics, the OpenAPI description and the dashboard page.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use super::{AppState, DASHBOARD_HTML};

#[derive(Serialize)]
struct Ready {
    ready: bool,
    instance: String,
}

pub(super) async fn readyz(State(state): State<AppState>) -> Response {
    let ready = state.hub.is_ready();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(Ready {
            ready,
            instance: state.hub.instance().to_string(),
        }),
    )
        .into_response()
}

pub(super) async fn metrics(State(state): State<AppState>) -> Response {
    let mut text = state
        .metrics
        .as_ref()
        .map(|m| m.render())
        .unwrap_or_default();
    text.push_str(&state.hub.telemetry.render_progress());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

pub(super) async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/yaml")],
        include_str!("../../../docs/openapi.yaml"),
    )
        .into_response()
}

pub(super) async fn dashboard() -> Html<&'static str> {
    Html(DASHBOARD_HTML)
}
