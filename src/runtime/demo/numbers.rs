//! Numbers and times for people: thousands separators, percentages, the wall clock.

use rust_decimal::Decimal;

pub(super) fn clock() -> String {
    chrono::Local::now().format("%H:%M:%S").to_string()
}

/// `0.25` -> `25%`.
pub(super) fn percent(fraction: Decimal) -> String {
    format!(
        "{}%",
        (fraction * Decimal::ONE_HUNDRED).round_dp(0).normalize()
    )
}

/// A decimal for people: at most two fractional digits (four below 1), thousands separated.
pub(super) fn number(d: Decimal) -> String {
    let dp = if d.abs() < Decimal::ONE { 4 } else { 2 };
    let text = d.round_dp(dp).normalize().to_string();
    let (sign, digits) = match text.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", text.as_str()),
    };
    let (int, frac) = match digits.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (digits, None),
    };
    let mut s = sign.to_string();
    s.push_str(&group_digits(int));
    if let Some(f) = frac {
        s.push('.');
        s.push_str(f);
    }
    s
}

pub(super) fn thousands(n: u64) -> String {
    group_digits(&n.to_string())
}

fn group_digits(int: &str) -> String {
    let mut s = String::with_capacity(int.len() + int.len() / 3);
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            s.push(',');
        }
        s.push(c);
    }
    s
}
