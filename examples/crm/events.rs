//! Prints the CRM sample dataset (`tests/data/crm/`) as goalpost JSON events, one per line, in
//! time order: an `opportunity_created` per engaged opportunity and a `deal_won` / `deal_lost`
//! per closed one. The input of the look-ahead worked example in the README:
//!
//! ```text
//! cargo run --example crm_events > crm-events.jsonl
//! goalpost replay --goals examples/crm/lookahead.toml --events crm-events.jsonl
//! ```

#[allow(dead_code)]
#[path = "../../tests/support/crm_data.rs"]
mod crm_data;

use std::io::{self, BufWriter, Write};

fn main() -> io::Result<()> {
    let (opportunities, teams) = crm_data::load();
    let mut out = BufWriter::new(io::stdout().lock());
    for event in crm_data::to_events(&opportunities, &teams) {
        writeln!(out, "{}", event.line)?;
    }
    out.flush()
}
