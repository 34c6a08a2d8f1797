//! A webhook receiver: checks every request's signature, answers as each test's script says,
//! and remembers what it was sent.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How the receiver answers one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    Ok,
    Status(u16),
    /// 429 with `Retry-After: 1`.
    TooMany,
    /// No answer for this long (the sender's timeout is shorter).
    Stall(Duration),
    /// 200 after this long (shorter than the sender's timeout).
    Slow(Duration),
}

/// One request received.
#[derive(Clone, Debug)]
pub struct Request {
    pub idempotency_key: String,
    pub body: Vec<u8>,
    /// The signature verified against the body and timestamp.
    pub signed: bool,
    pub answer: Answer,
    /// When its body had arrived.
    pub at: Instant,
}

type Script = dyn Fn(&str, usize) -> Answer + Send + Sync;

/// The receiver: `script(idempotency_key, attempt)` (attempt counted from 1) picks each answer.
pub struct Server {
    pub url: String,
    pub requests: Arc<Mutex<Vec<Request>>>,
}

impl Server {
    pub fn start(secret: &'static str, script: Box<Script>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let attempts = Arc::new(Mutex::new(HashMap::<String, usize>::new()));
        let script: Arc<Script> = Arc::from(script);
        let reqs = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let (reqs, attempts, script) = (reqs.clone(), attempts.clone(), script.clone());
                std::thread::spawn(move || {
                    let _ = handle(stream, secret, &reqs, &attempts, &*script);
                });
            }
        });
        Server { url, requests }
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

fn handle(
    stream: TcpStream,
    secret: &str,
    reqs: &Mutex<Vec<Request>>,
    attempts: &Mutex<HashMap<String, usize>>,
    script: &Script,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut headers = HashMap::new();
    let mut line = String::new();
    reader.read_line(&mut line)?;
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body)?;
    let key = headers.get("idempotency-key").cloned().unwrap_or_default();
    let attempt = {
        let mut a = attempts.lock().unwrap();
        let n = a.entry(key.clone()).or_insert(0);
        *n += 1;
        *n
    };
    let answer = script(&key, attempt);
    let signed = verify(secret, &headers, &body);
    reqs.lock().unwrap().push(Request {
        idempotency_key: key,
        body,
        signed,
        answer,
        at: Instant::now(),
    });
    let mut out = stream;
    let status_line = match answer {
        Answer::Ok => "200 OK\r\n".to_string(),
        Answer::Status(s) => format!("{s} Scripted\r\n"),
        Answer::TooMany => "429 Too Many Requests\r\nRetry-After: 1\r\n".to_string(),
        Answer::Stall(d) | Answer::Slow(d) => {
            std::thread::sleep(d);
            "200 OK\r\n".to_string()
        }
    };
    write!(
        out,
        "HTTP/1.1 {status_line}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
}

/// `X-Goalpost-Signature` = `v1=` hex HMAC-SHA256(secret, "{X-Goalpost-Timestamp}.{body}").
fn verify(secret: &str, headers: &HashMap<String, String>, body: &[u8]) -> bool {
    let (Some(ts), Some(sig)) = (
        headers.get("x-goalpost-timestamp"),
        headers.get("x-goalpost-signature"),
    ) else {
        return false;
    };
    let Some(hex) = sig.strip_prefix("v1=") else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(ts.as_bytes());
    mac.update(b".");
    mac.update(body);
    let want: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    want == hex
}
