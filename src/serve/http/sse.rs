//! `/v1/stream`: server-sent events of this instance's attainment events and, relayed, the
//! other instances'.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream;

use super::attainments::{check_peer_attainments, AttainmentsBody};
use super::{encode_query, guard, paths, wall_clock, AppState};
use crate::serve::hub::{self, RecentAttainment};
use crate::serve::peers::Peers;

/// How often the relay asks the other instances for their new attainment events.
const RELAY_EVERY: StdDuration = StdDuration::from_secs(1);

/// One task per server relays the other instances' attainment events to every event stream.
pub(super) struct Relay {
    peers: Arc<Peers>,
    tx: tokio::sync::broadcast::Sender<Arc<RecentAttainment>>,
    /// Per other instance: the newest commit time relayed.
    since: std::collections::BTreeMap<String, String>,
    started: String,
}

impl Relay {
    /// A relay of `peers`' attainment events to `tx`, from now on.
    pub(super) fn new(
        peers: Arc<Peers>,
        tx: tokio::sync::broadcast::Sender<Arc<RecentAttainment>>,
    ) -> Relay {
        Relay {
            peers,
            tx,
            since: Default::default(),
            started: wall_clock().to_rfc3339(),
        }
    }

    /// Relays every [`RELAY_EVERY`] while an event stream listens; runs as long as the server.
    pub(super) async fn run(mut self) {
        let mut tick = tokio::time::interval(RELAY_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if self.tx.receiver_count() == 0 {
                // Nobody listens: relay only what commits from now on.
                self.started = wall_clock().to_rfc3339();
                self.since.clear();
                continue;
            }
            self.relay_once().await;
        }
    }

    async fn relay_once(&mut self) {
        // One query for every peer, in parallel and under the fan-out deadline: each from the
        // newest event relayed of it, or from the start of relaying for a peer not heard yet.
        let limit = hub::RECENT_ATTAINMENTS;
        let since = self.since.clone();
        let started = self.started.clone();
        let path_of = |instance: &str| {
            let from = since.get(instance).unwrap_or(&started);
            format!(
                "{}?scope=local&limit={limit}&since={}",
                paths::ATTAINMENTS,
                encode_query(from)
            )
        };
        for (instance, result) in self.peers.fetch_each::<AttainmentsBody>(path_of).await {
            let Ok(body) = result.and_then(|b| check_peer_attainments(b, &instance, limit)) else {
                continue;
            };
            let from = self.since.get(&instance).unwrap_or(&self.started).clone();
            for item in body.attainments {
                if item.committed_at > from {
                    let newest = self.since.entry(instance.clone()).or_default();
                    if item.committed_at > *newest {
                        newest.clone_from(&item.committed_at);
                    }
                    // No receiver left is fine.
                    let _ = self.tx.send(Arc::new(item));
                }
            }
        }
    }
}

fn attainment_event(item: &RecentAttainment) -> Event {
    let data = serde_json::to_string(item).unwrap_or_default();
    Event::default().event("attainment").data(data)
}

fn stream_event(
    r: Result<Arc<RecentAttainment>, tokio::sync::broadcast::error::RecvError>,
) -> Option<Event> {
    match r {
        Ok(item) => Some(attainment_event(&item)),
        Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => Some(
            Event::default()
                .event("lagged")
                .data(format!("{{\"skipped\":{n}}}")),
        ),
        Err(tokio::sync::broadcast::error::RecvError::Closed) => None,
    }
}

/// Server-sent events: a `hello` event, then every `attainment` event as it commits: this
/// instance's at once, the other instances' relayed within about a second. At most
/// `http.max_streams` at once.
pub(super) async fn stream_attainments(State(state): State<AppState>) -> Response {
    let Ok(permit) = state.permits.streams.clone().try_acquire_owned() else {
        return guard::busy("too many event streams open (http.max_streams); retry later");
    };
    let local = state.hub.subscribe();
    let relayed = state.relayed.as_ref().map(|tx| tx.subscribe());
    let hello = Event::default()
        .event("hello")
        .data(serde_json::json!({ "instance": state.hub.instance() }).to_string());
    // The permit lives as long as the stream.
    let events = stream::unfold(
        (local, relayed, permit),
        |(mut local, mut relayed, permit)| async move {
            let event = match &mut relayed {
                Some(r) => tokio::select! {
                    x = local.recv() => stream_event(x),
                    x = r.recv() => stream_event(x),
                },
                None => stream_event(local.recv().await),
            }?;
            Some((Ok::<_, Infallible>(event), (local, relayed, permit)))
        },
    );
    let all = stream::iter([Ok(hello)]);
    Sse::new(futures_util::StreamExt::chain(all, events))
        .keep_alive(KeepAlive::default())
        .into_response()
}
