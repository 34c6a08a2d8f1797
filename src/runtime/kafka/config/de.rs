//! Deserializers of the values written as strings: formats, the `max_future` bound. (Durations
//! deserialize themselves.)

use serde::{Deserialize, Deserializer};

use crate::codec::future::MaxFuture;
use crate::codec::Format;

pub(super) fn format<'de, D: Deserializer<'de>>(d: D) -> Result<Format, D::Error> {
    let s = String::deserialize(d)?;
    match s.as_str() {
        "json" => Ok(Format::Json),
        "proto" => Ok(Format::Proto),
        other => Err(serde::de::Error::custom(format!(
            "`{other}` is not a format; allowed: json, proto"
        ))),
    }
}

pub(super) fn max_future<'de, D: Deserializer<'de>>(d: D) -> Result<MaxFuture, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map_err(serde::de::Error::custom)
}
