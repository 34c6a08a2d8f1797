//! `goalpost notify`'s HTTP server: `/metrics` (Prometheus) and `/healthz`, on a thread of its
//! own.

use std::net::SocketAddr;

use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;

use super::error::NotifyError;
use crate::serve::{http::bind, paths};

/// Binds `listen` and serves there; returns the bound address.
pub fn start(listen: SocketAddr, metrics: PrometheusHandle) -> Result<SocketAddr, NotifyError> {
    let failed = |cause: String| NotifyError::Start {
        what: format!("the HTTP server on {listen}"),
        cause,
    };
    let listener = bind(listen).map_err(|e| failed(e.to_string()))?;
    let addr = listener.local_addr().map_err(|e| failed(e.to_string()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| failed(e.to_string()))?;
    let app = Router::new()
        .route(
            paths::METRICS,
            get(move || std::future::ready(metrics.render())),
        )
        .route(paths::HEALTHZ, get(|| std::future::ready("ok\n")));
    std::thread::Builder::new()
        .name("goalpost-notify-http".into())
        .spawn(move || {
            runtime.block_on(async move {
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => {
                        if let Err(e) = axum::serve(l, app).await {
                            tracing::error!(error = %e, "HTTP server stopped");
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "HTTP listener"),
                }
            })
        })
        .map_err(|e| failed(e.to_string()))?;
    tracing::info!(%addr, "HTTP server listening (/metrics, /healthz)");
    Ok(addr)
}
