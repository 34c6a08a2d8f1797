//! The other instances of an application, found through the consumer group.
//!
//! Every instance's consumer carries `client.id = goalpost;{instance};{advertised url}`; the
//! group's member list (ListGroups/DescribeGroups) therefore names every live instance and where
//! to reach its HTTP server. Ownership follows the group's assignment: an instance's answer for
//! `scope=local` is exactly the state of the partitions it owns now.

use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde::de::DeserializeOwned;

use super::http::Token;

/// How long a member list is reused.
const MEMBERS_TTL: StdDuration = StdDuration::from_secs(2);
/// Timeout of one peer request.
const PEER_TIMEOUT: StdDuration = StdDuration::from_secs(3);

/// The consumer `client.id` that advertises an instance's HTTP address to the group.
pub fn client_id(instance: &str, url: &str) -> String {
    format!("goalpost;{instance};{url}")
}

/// Reads a `client.id` written by [`client_id`]: (instance, url).
pub fn parse_client_id(id: &str) -> Option<(String, String)> {
    let rest = id.strip_prefix("goalpost;")?;
    let (instance, url) = rest.split_once(';')?;
    (!instance.is_empty() && url.starts_with("http")).then(|| (instance.into(), url.into()))
}

/// A live instance other than this one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Its instance id.
    pub instance: String,
    /// Its HTTP base URL.
    pub url: String,
}

struct Cache {
    at: Option<Instant>,
    peers: Vec<Peer>,
}

/// Finds and asks the other instances of the application.
pub struct Peers {
    client: ClientConfig,
    group: String,
    instance: String,
    consumer: Mutex<Option<Arc<BaseConsumer>>>,
    cache: Mutex<Cache>,
}

impl Peers {
    /// Peers of `instance` in consumer group `group`, reached with `client` (Kafka settings).
    pub fn new(client: ClientConfig, group: String, instance: String) -> Peers {
        Peers {
            client,
            group,
            instance,
            consumer: Mutex::new(None),
            cache: Mutex::new(Cache {
                at: None,
                peers: Vec::new(),
            }),
        }
    }

    fn list_members(&self) -> Result<Vec<Peer>, String> {
        let consumer = {
            let mut slot = self.consumer.lock().expect("peer client lock");
            match &*slot {
                Some(c) => c.clone(),
                None => {
                    let c: BaseConsumer = self
                        .client
                        .create()
                        .map_err(|e| format!("create the group client: {e}"))?;
                    let c = Arc::new(c);
                    *slot = Some(c.clone());
                    c
                }
            }
        };
        let list = consumer
            .fetch_group_list(Some(&self.group), StdDuration::from_secs(5))
            .map_err(|e| format!("list the members of group {}: {e}", self.group))?;
        let mut peers: Vec<Peer> = list
            .groups()
            .iter()
            .filter(|g| g.name() == self.group)
            .flat_map(|g| g.members().iter())
            .filter_map(|m| parse_client_id(m.client_id()))
            .filter(|(instance, _)| *instance != self.instance)
            .map(|(instance, url)| Peer { instance, url })
            .collect();
        peers.sort_by(|a, b| a.instance.cmp(&b.instance));
        peers.dedup();
        Ok(peers)
    }

    /// The other live instances (cached briefly).
    pub fn members(&self) -> Result<Vec<Peer>, String> {
        {
            let cache = self.cache.lock().expect("peer cache lock");
            if cache.at.is_some_and(|t| t.elapsed() < MEMBERS_TTL) {
                return Ok(cache.peers.clone());
            }
        }
        let peers = self.list_members()?;
        let mut cache = self.cache.lock().expect("peer cache lock");
        cache.at = Some(Instant::now());
        cache.peers = peers.clone();
        Ok(peers)
    }

    /// GETs `path` (with its query) from every other instance, in parallel: (instance, body).
    pub async fn fetch_all<T: DeserializeOwned + Send + 'static>(
        self: &Arc<Self>,
        path: &str,
        token: Option<Token>,
    ) -> Vec<(String, Result<T, String>)> {
        let me = self.clone();
        let members = match tokio::task::spawn_blocking(move || me.members()).await {
            Ok(Ok(m)) => m,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot list the other instances");
                return vec![("(group)".to_string(), Err(e))];
            }
            Err(e) => return vec![("(group)".to_string(), Err(e.to_string()))],
        };
        let mut tasks = Vec::new();
        for peer in members {
            let url = format!("{}{}", peer.url.trim_end_matches('/'), path);
            let token = token.clone();
            tasks.push((
                peer.instance,
                tokio::task::spawn_blocking(move || get_json::<T>(&url, token.as_ref())),
            ));
        }
        let mut out = Vec::new();
        for (instance, task) in tasks {
            let result = match task.await {
                Ok(r) => r,
                Err(e) => Err(e.to_string()),
            };
            out.push((instance, result));
        }
        out
    }
}

/// GETs a JSON body from another instance, with the bearer token.
pub fn get_json<T: DeserializeOwned>(url: &str, token: Option<&Token>) -> Result<T, String> {
    let mut request = ureq::get(url).timeout(PEER_TIMEOUT);
    if let Some(t) = token {
        request = request.set("Authorization", &format!("Bearer {}", t.expose()));
    }
    let response = request.call().map_err(|e| match e {
        ureq::Error::Status(code, _) => format!("GET {url}: HTTP {code}"),
        ureq::Error::Transport(t) => format!("GET {url}: {t}"),
    })?;
    let text = response
        .into_string()
        .map_err(|e| format!("GET {url}: {e}"))?;
    serde_json::from_str(&text).map_err(|e| format!("GET {url}: invalid JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_round_trip() {
        let id = client_id("goalpost-1", "http://goalpost-1.goalpost-headless:8080");
        assert_eq!(
            parse_client_id(&id),
            Some((
                "goalpost-1".to_string(),
                "http://goalpost-1.goalpost-headless:8080".to_string()
            ))
        );
        assert_eq!(parse_client_id("rdkafka"), None);
        assert_eq!(parse_client_id("goalpost;;http://x"), None);
        assert_eq!(parse_client_id("goalpost;a;ftp://x"), None);
    }
}
