//! The other instances of an application, found through the consumer group.
//!
//! Every instance's consumer carries `client.id = goalpost;{instance};{advertised url}`; the
//! group's member list (ListGroups/DescribeGroups) therefore names every live instance and where
//! to reach its HTTP server. Ownership follows the group's assignment: an instance's answer for
//! `scope=local` is exactly the state of the partitions it owns now.
//!
//! Anyone who can join the consumer group can advertise any URL, so a member is asked only when
//! its URL's host is trusted ([`PeerTrust`]), and it is sent the peer secret (or, without one,
//! the API token) only then.

use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde::de::DeserializeOwned;

use super::http::Token;

/// How long a member list is reused.
const MEMBERS_TTL: StdDuration = StdDuration::from_secs(2);
/// How long a failed member listing is remembered, so that a Kafka outage costs one wait, not
/// one per query.
const FAILED_TTL: StdDuration = StdDuration::from_secs(10);
/// How long listing the group's members may take.
const LIST_TIMEOUT: StdDuration = StdDuration::from_secs(3);
/// Timeout of one peer request.
const PEER_TIMEOUT: StdDuration = StdDuration::from_secs(3);
/// Overall deadline of asking every peer: those that have not answered by then are unavailable.
pub const FAN_OUT_DEADLINE: StdDuration = StdDuration::from_secs(4);
/// The most peers asked in one fan-out; members beyond it are unavailable.
const MAX_PEERS: usize = 32;
/// The most peer requests in flight at once, over every query and the event relay: a request
/// that hangs holds its slot until `PEER_TIMEOUT`, whatever the fan-out deadline. Without a
/// free slot, a peer is reported unavailable at once.
pub const MAX_PEER_CALLS: usize = 32;
/// A peer's failures are logged at most this often (each dashboard asks every 2 s).
const WARN_EVERY: StdDuration = StdDuration::from_secs(60);

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

/// An `http://` URL as the HTTP client reads it (the `url` crate's parser: a host also ends at
/// `\\`, for instance), or `None` for any other scheme or a URL with user information.
pub fn parse_http_url(url: &str) -> Option<url::Url> {
    let parsed = url::Url::parse(url).ok()?;
    let plain = parsed.scheme() == "http" && parsed.username().is_empty();
    (plain && parsed.password().is_none() && parsed.host_str().is_some()).then_some(parsed)
}

/// The host of an `http://host[:port][/path]` URL as the HTTP client would connect to it, lower
/// case, IPv6 without brackets; `None` for any other scheme or a URL with user information.
pub fn url_host(url: &str) -> Option<String> {
    host_of(&parse_http_url(url)?)
}

fn host_of(url: &url::Url) -> Option<String> {
    let host = url.host_str()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Which advertised hosts this instance calls, and the secret it sends them.
#[derive(Clone, Debug)]
pub struct PeerTrust {
    /// Host patterns: an exact host, or `*.suffix` for any host under `suffix`.
    hosts: Vec<String>,
    /// Sent as `Authorization: Bearer` to trusted peers.
    credential: Option<Token>,
}

impl PeerTrust {
    /// Trust for `http.peer_hosts` (empty: derived from `own_url`) and a credential.
    ///
    /// Derived: loopback hosts when this instance's own host is loopback; otherwise its own
    /// host and, for a Kubernetes headless-service pod name only, every host under its service
    /// (`goalpost-0.goalpost-headless` trusts `*.goalpost-headless`; `goalpost.example.com`
    /// trusts itself only).
    pub fn new(configured: &[String], own_url: &str, credential: Option<Token>) -> PeerTrust {
        let hosts = if configured.is_empty() {
            derived_hosts(own_url)
        } else {
            configured.iter().map(|h| h.to_ascii_lowercase()).collect()
        };
        PeerTrust { hosts, credential }
    }

    /// Whether a member advertising `url` may be asked.
    pub fn allows(&self, url: &str) -> bool {
        self.checked(url).is_some()
    }

    /// `url` parsed as the HTTP client reads it, when its host is trusted: the request goes to
    /// exactly the host that was checked.
    pub fn checked(&self, url: &str) -> Option<url::Url> {
        let parsed = parse_http_url(url)?;
        let host = host_of(&parsed)?;
        let trusted = self.hosts.iter().any(|p| match p.strip_prefix("*.") {
            Some(suffix) => host
                .strip_suffix(suffix)
                .is_some_and(|label| label.ends_with('.') && label.len() > 1),
            None if p == "loopback" => is_loopback(&host),
            None => *p == host,
        });
        trusted.then_some(parsed)
    }
}

/// Suffixes of Kubernetes service names: `<pod>.<service>.<namespace>` then one of these.
const CLUSTER_SUFFIXES: [&str; 2] = [".svc.cluster.local", ".svc"];

fn derived_hosts(own_url: &str) -> Vec<String> {
    let Some(host) = url_host(own_url) else {
        return Vec::new();
    };
    if is_loopback(&host) {
        return vec!["loopback".into()];
    }
    let mut hosts = vec![host.clone()];
    hosts.extend(headless_parent(&host).map(|parent| format!("*.{parent}")));
    hosts
}

/// The service of a Kubernetes headless-service pod name: `<pod>.<service>` where `<service>`
/// cannot be a top-level domain (it holds a `-` or a digit, and is not an `xn--` name), or
/// `<pod>.<service>.<namespace>.svc[.cluster.local]`. `None` for any other host (an IP, a
/// public DNS name such as `goalpost.example.com`), whose parent domain is not trusted.
fn headless_parent(host: &str) -> Option<&str> {
    if host.parse::<std::net::IpAddr>().is_ok() {
        return None;
    }
    let (_, parent) = host.split_once('.')?;
    for suffix in CLUSTER_SUFFIXES {
        if let Some(service_ns) = parent.strip_suffix(suffix) {
            let labels: Vec<&str> = service_ns.split('.').collect();
            let named = labels.len() == 2 && labels.iter().all(|l| !l.is_empty());
            return named.then_some(parent);
        }
    }
    let service_like = !parent.contains('.')
        && !parent.starts_with("xn--")
        && parent.bytes().any(|b| b == b'-' || b.is_ascii_digit());
    service_like.then_some(parent)
}

/// A live instance other than this one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Its instance id.
    pub instance: String,
    /// Its HTTP base URL.
    pub url: String,
}

/// The members of the group as last listed: trusted peers, and untrusted members (by instance).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Members {
    /// Peers to ask.
    pub trusted: Vec<Peer>,
    /// Members not asked: their URL's host is not trusted, or there are too many.
    pub refused: Vec<String>,
}

struct Cache {
    at: Option<Instant>,
    result: Result<Members, String>,
}

/// Where the member list comes from.
enum Source {
    Group {
        client: ClientConfig,
        group: String,
        consumer: Option<Arc<BaseConsumer>>,
    },
    /// A fixed list (tests).
    Fixed(Vec<Peer>),
}

/// Finds and asks the other instances of the application.
pub struct Peers {
    instance: String,
    trust: PeerTrust,
    /// Held while listing, so that concurrent queries wait for one listing, not one each.
    source: Mutex<Source>,
    cache: Mutex<Cache>,
    /// When each peer's failure was last logged.
    warned: Mutex<std::collections::HashMap<String, Instant>>,
    /// Slots of peer requests in flight ([`MAX_PEER_CALLS`]).
    calls: Arc<tokio::sync::Semaphore>,
    /// The HTTP client of peer requests: no redirects followed.
    agent: ureq::Agent,
}

impl Peers {
    /// Peers of `instance` in consumer group `group`, reached with `client` (Kafka settings).
    pub fn new(client: ClientConfig, group: String, instance: String, trust: PeerTrust) -> Peers {
        Peers::with_source(
            Source::Group {
                client,
                group,
                consumer: None,
            },
            instance,
            trust,
        )
    }

    /// Peers from a fixed list instead of the group (tests).
    pub fn fixed(peers: Vec<Peer>, instance: String, trust: PeerTrust) -> Peers {
        Peers::with_source(Source::Fixed(peers), instance, trust)
    }

    fn with_source(source: Source, instance: String, trust: PeerTrust) -> Peers {
        Peers {
            instance,
            trust,
            source: Mutex::new(source),
            cache: Mutex::new(Cache {
                at: None,
                result: Ok(Members::default()),
            }),
            warned: Mutex::new(Default::default()),
            calls: Arc::new(tokio::sync::Semaphore::new(MAX_PEER_CALLS)),
            agent: ureq::AgentBuilder::new()
                .redirects(0)
                .timeout(PEER_TIMEOUT)
                .build(),
        }
    }

    /// The same with at most `n` peer requests in flight.
    #[cfg(test)]
    pub(crate) fn with_max_calls(mut self, n: usize) -> Peers {
        self.calls = Arc::new(tokio::sync::Semaphore::new(n));
        self
    }

    /// Logs that `instance` did not answer, at most once per `WARN_EVERY` per instance.
    pub fn warn(&self, instance: &str, error: &str) {
        if self.warning_due(instance) {
            tracing::warn!(
                instance,
                error,
                "peer did not answer (logged once a minute)"
            );
        }
    }

    /// Whether a failure of `instance` is to be logged now (and then not again for a while).
    fn warning_due(&self, instance: &str) -> bool {
        let mut warned = self.warned.lock().expect("peer warnings lock");
        if warned
            .get(instance)
            .is_some_and(|t| t.elapsed() < WARN_EVERY)
        {
            return false;
        }
        // Bounded: members come and go.
        if warned.len() > 4 * MAX_PEERS {
            warned.clear();
        }
        warned.insert(instance.to_string(), Instant::now());
        true
    }

    fn cached(&self) -> Option<Result<Members, String>> {
        let cache = self.cache.lock().expect("peer cache lock");
        let ttl = if cache.result.is_ok() {
            MEMBERS_TTL
        } else {
            FAILED_TTL
        };
        cache
            .at
            .is_some_and(|t| t.elapsed() < ttl)
            .then(|| cache.result.clone())
    }

    /// The other live instances (cached briefly; a failure is cached longer).
    pub fn members(&self) -> Result<Members, String> {
        if let Some(hit) = self.cached() {
            return hit;
        }
        let mut source = self.source.lock().expect("peer source lock");
        // Another query may have listed them while this one waited.
        if let Some(hit) = self.cached() {
            return hit;
        }
        let result = list_members(&mut source).map(|all| self.sort_out(all));
        if let Err(e) = &result {
            tracing::warn!(error = %e, "cannot list the other instances");
        }
        let mut cache = self.cache.lock().expect("peer cache lock");
        cache.at = Some(Instant::now());
        cache.result = result.clone();
        result
    }

    fn sort_out(&self, mut all: Vec<Peer>) -> Members {
        all.retain(|p| p.instance != self.instance);
        all.sort_by(|a, b| a.instance.cmp(&b.instance));
        all.dedup();
        let mut members = Members::default();
        for peer in all {
            if self.trust.allows(&peer.url) && members.trusted.len() < MAX_PEERS {
                members.trusted.push(peer);
            } else {
                tracing::debug!(instance = %peer.instance, url = %peer.url, "member not asked");
                members.refused.push(peer.instance);
            }
        }
        members
    }

    /// GETs `path` (with its query) from every trusted instance, in parallel, within
    /// [`FAN_OUT_DEADLINE`]: (instance, body). Members not asked, not answering in time or
    /// without a free request slot ([`MAX_PEER_CALLS`]) are errors.
    pub async fn fetch_all<T: DeserializeOwned + Send + 'static>(
        self: &Arc<Self>,
        path: &str,
    ) -> Vec<(String, Result<T, String>)> {
        self.fetch_each(|_| path.to_string()).await
    }

    /// [`Peers::fetch_all`] with a path (and query) per instance.
    pub async fn fetch_each<T: DeserializeOwned + Send + 'static>(
        self: &Arc<Self>,
        path_of: impl Fn(&str) -> String,
    ) -> Vec<(String, Result<T, String>)> {
        let deadline = tokio::time::Instant::now() + FAN_OUT_DEADLINE;
        let me = self.clone();
        // The blocking pool serves only the listing: peer requests run on threads of their own.
        let listed =
            tokio::time::timeout_at(deadline, tokio::task::spawn_blocking(move || me.members()));
        let members = match listed.await {
            Ok(Ok(Ok(m))) => m,
            Ok(Ok(Err(e))) => return vec![("(group)".to_string(), Err(e))],
            Ok(Err(e)) => return vec![("(group)".to_string(), Err(e.to_string()))],
            Err(_) => return vec![("(group)".to_string(), Err("listing timed out".into()))],
        };
        let mut out: Vec<(String, Result<T, String>)> = members
            .refused
            .into_iter()
            .map(|i| {
                (
                    i,
                    Err("its advertised host is not trusted (http.peer_hosts)".into()),
                )
            })
            .collect();
        let tasks: Vec<_> = members
            .trusted
            .into_iter()
            .map(|peer| {
                let url = format!(
                    "{}{}",
                    peer.url.trim_end_matches('/'),
                    path_of(&peer.instance)
                );
                (peer.instance, self.call::<T>(&url))
            })
            .collect();
        for (instance, task) in tasks {
            let result = match task {
                Err(e) => Err(e),
                Ok(answer) => match tokio::time::timeout_at(deadline, answer).await {
                    Ok(Ok(r)) => r,
                    Ok(Err(_)) => Err("the peer request ended without an answer".into()),
                    Err(_) => Err("no answer within the fan-out deadline".into()),
                },
            };
            out.push((instance, result));
        }
        out
    }

    /// Starts one peer request on a thread of its own, holding a request slot until it ends.
    fn call<T: DeserializeOwned + Send + 'static>(
        &self,
        url: &str,
    ) -> Result<tokio::sync::oneshot::Receiver<Result<T, String>>, String> {
        let Some(url) = self.trust.checked(url) else {
            return Err(format!("`{url}` is not a URL of a trusted host"));
        };
        let Ok(permit) = self.calls.clone().try_acquire_owned() else {
            return Err("too many peer requests in flight; not asked".into());
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (agent, credential) = (self.agent.clone(), self.trust.credential.clone());
        std::thread::Builder::new()
            .name("goalpost-peer".into())
            .spawn(move || {
                let answer = get_json::<T>(&agent, &url, credential.as_ref());
                drop(permit);
                // The query may have given up.
                let _ = tx.send(answer);
            })
            .map_err(|e| format!("cannot start a peer request: {e}"))?;
        Ok(rx)
    }
}

fn list_members(source: &mut Source) -> Result<Vec<Peer>, String> {
    let (client, group, slot) = match source {
        Source::Fixed(peers) => return Ok(peers.clone()),
        Source::Group {
            client,
            group,
            consumer,
        } => (client, group, consumer),
    };
    let consumer = match slot {
        Some(c) => c.clone(),
        None => {
            let c: BaseConsumer = client
                .create()
                .map_err(|e| format!("create the group client: {e}"))?;
            slot.insert(Arc::new(c)).clone()
        }
    };
    let list = consumer
        .fetch_group_list(Some(group), LIST_TIMEOUT)
        .map_err(|e| format!("list the members of group {group}: {e}"))?;
    Ok(list
        .groups()
        .iter()
        .filter(|g| g.name() == group)
        .flat_map(|g| g.members().iter())
        .filter_map(|m| parse_client_id(m.client_id()))
        .map(|(instance, url)| Peer { instance, url })
        .collect())
}

/// GETs a JSON body from another instance, with a bearer credential; redirects are not
/// followed.
fn get_json<T: DeserializeOwned>(
    agent: &ureq::Agent,
    url: &url::Url,
    credential: Option<&Token>,
) -> Result<T, String> {
    let mut request = agent.request_url("GET", url);
    if let Some(t) = credential {
        request = request.set("Authorization", &format!("Bearer {}", t.expose()));
    }
    let response = request.call().map_err(|e| match e {
        ureq::Error::Status(code, _) => format!("GET {url}: HTTP {code}"),
        ureq::Error::Transport(t) => format!("GET {url}: {t}"),
    })?;
    if response.status() != 200 {
        return Err(format!("GET {url}: HTTP {}", response.status()));
    }
    let text = response
        .into_string()
        .map_err(|e| format!("GET {url}: {e}"))?;
    serde_json::from_str(&text).map_err(|e| format!("GET {url}: invalid answer: {e}"))
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

    #[test]
    fn a_peers_failures_are_logged_once_a_minute() {
        let peers = Peers::fixed(Vec::new(), "me".into(), PeerTrust::new(&[], "", None));
        assert!(peers.warning_due("a"));
        assert!(!peers.warning_due("a"), "logged again at once");
        assert!(peers.warning_due("b"));
    }

    #[test]
    fn hosts_are_read_from_urls() {
        assert_eq!(url_host("http://a.b:80/x").as_deref(), Some("a.b"));
        assert_eq!(url_host("http://[::1]:8080").as_deref(), Some("::1"));
        assert_eq!(url_host("http://Host").as_deref(), Some("host"));
        assert_eq!(url_host("http://user@evil:80"), None);
        assert_eq!(url_host("https://a:1"), None);
        assert_eq!(url_host("http://:80"), None);
    }

    #[test]
    fn a_backslash_ends_the_host_as_the_http_client_reads_it() {
        let evil = "http://attacker.example\\.goalpost-headless:80";
        assert_eq!(url_host(evil).as_deref(), Some("attacker.example"));
        let t = PeerTrust::new(&[], "http://goalpost-0.goalpost-headless:8080", None);
        assert!(!t.allows(evil), "{evil} is trusted");
        assert!(!t.allows("http://x:y@goalpost-1.goalpost-headless:80"));
        let parsed = t.checked("http://goalpost-1.goalpost-headless:80/v1/goals/a?scope=local");
        assert_eq!(
            parsed.as_ref().and_then(|u| u.host_str()),
            Some("goalpost-1.goalpost-headless")
        );
    }

    #[test]
    fn a_wildcard_is_derived_only_from_a_headless_service_pod_name() {
        let allows = |own: &str, other: &str| PeerTrust::new(&[], own, None).allows(other);
        assert!(!allows(
            "http://goalpost.example.com",
            "http://evil.example.com"
        ));
        assert!(allows(
            "http://goalpost.example.com",
            "http://goalpost.example.com:81"
        ));
        assert!(!allows("http://myhost.com:8080", "http://evil.com:8080"));
        assert!(!allows("http://myhost.xn--p1ai", "http://evil.xn--p1ai"));
        assert!(allows("http://gp-0.gp-headless", "http://gp-1.gp-headless"));
        assert!(allows("http://gp-0.gp2", "http://gp-1.gp2"));
        let fqdn = "http://gp-0.gp-headless.team.svc.cluster.local:8080";
        assert!(allows(
            fqdn,
            "http://gp-1.gp-headless.team.svc.cluster.local:8080"
        ));
        assert!(!allows(fqdn, "http://other.team.svc.cluster.local:8080"));
        assert!(allows("http://gp-0.gp.team.svc", "http://gp-1.gp.team.svc"));
        assert!(!allows("http://gp.team.svc", "http://evil.team.svc"));
        assert!(!allows(
            "http://gp.svc.cluster.local",
            "http://evil.svc.cluster.local"
        ));
    }

    #[test]
    fn trust_is_derived_from_the_own_url_or_configured() {
        let t = PeerTrust::new(&[], "http://goalpost-0.goalpost-headless:8080", None);
        assert!(t.allows("http://goalpost-1.goalpost-headless:8080"));
        assert!(!t.allows("http://goalpost-headless:8080"));
        assert!(!t.allows("http://evil.example:8080"));
        assert!(!t.allows("http://x.goalpost-headless.evil:8080"));
        assert!(!t.allows("http://169.254.169.254/latest"));
        let local = PeerTrust::new(&[], "http://127.0.0.1:8080", None);
        assert!(local.allows("http://127.0.0.1:9000"));
        assert!(local.allows("http://localhost:9000"));
        assert!(!local.allows("http://10.0.0.1:9000"));
        let ip = PeerTrust::new(&[], "http://10.0.0.5:8080", None);
        assert!(ip.allows("http://10.0.0.5:8081"));
        assert!(!ip.allows("http://0.0.0.5:8080"));
        let set = PeerTrust::new(
            &["10.0.0.6".into(), "*.svc".into()],
            "http://10.0.0.5",
            None,
        );
        assert!(set.allows("http://10.0.0.6:1"));
        assert!(set.allows("http://a.svc:1"));
        assert!(!set.allows("http://10.0.0.5:1"));
    }
}
