//! The throughput baseline for `goalpost replay`: bare serde_json decoding of the same JSON-lines
//! file into a plain struct, nothing else. Prints events/s on stderr.
//!
//! `cargo run --release --example decode_baseline -- FILE`

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::time::Instant;

use serde::Deserialize;

#[allow(dead_code)]
#[derive(Deserialize)]
struct Event {
    event_id: String,
    event_type: String,
    occurred_at: String,
    rep_id: Option<String>,
    team_id: Option<String>,
    region: Option<String>,
    account_id: Option<String>,
    opportunity_id: Option<String>,
    lead_id: Option<String>,
    product: Option<String>,
    stage: Option<String>,
    previous_stage: Option<String>,
    currency: Option<String>,
    amount: Option<f64>,
    attributes: Option<HashMap<String, String>>,
}

fn main() {
    let path = std::env::args()
        .nth(1)
        .expect("usage: decode_baseline FILE");
    let start = Instant::now();
    let mut reader = BufReader::with_capacity(1 << 16, File::open(&path).expect("open input"));
    let mut line = String::new();
    let (mut ok, mut bad) = (0u64, 0u64);
    loop {
        line.clear();
        if reader.read_line(&mut line).expect("read") == 0 {
            break;
        }
        match serde_json::from_str::<Event>(&line) {
            Ok(ev) => {
                std::hint::black_box(ev);
                ok += 1;
            }
            Err(_) => bad += 1,
        }
    }
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "baseline: {} events in {secs:.3}s = {:.0} events/s ({bad} undecodable)",
        ok + bad,
        (ok + bad) as f64 / secs
    );
}
