//! Exact decimal arithmetic for amounts, targets and KPI values.
//!
//! Every amount is a [`Decimal`] (96-bit mantissa, up to 28 significant digits). Sums, minima,
//! maxima and counts are exact; quotients (avg, ratio, progress) are rounded to 28 significant digits.
//! Inputs are limited to |amount| < 10^18 with at most 10 fractional digits, so ten billion
//! maximal amounts still sum exactly.

use std::str::FromStr;

pub use rust_decimal::Decimal;
use thiserror::Error;

/// Largest accepted magnitude of an input amount (exclusive): 10^18.
pub const MAX_AMOUNT_EXCLUSIVE: Decimal =
    Decimal::from_parts(0xA764_0000, 0x0DE0_B6B3, 0, false, 0);

/// Most fractional digits accepted in an input amount.
pub const MAX_AMOUNT_SCALE: u32 = 10;

/// Why a decimal could not be read.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DecimalError {
    /// Not a number at all.
    #[error("`{0}` is not a decimal number")]
    NotANumber(String),
    /// A number, but beyond the allowed magnitude or precision.
    #[error("`{0}` is out of range: amounts must satisfy |amount| < 10^18 with at most 10 fractional digits")]
    OutOfRange(String),
}

/// Parses a decimal written as JSON number text or a plain string: `12`, `-3.50`, `1.2e3`.
/// `NaN`, infinities, hex and empty text are rejected. The value is kept exactly as written.
pub fn parse_decimal(text: &str) -> Result<Decimal, DecimalError> {
    let t = text.trim();
    let valid_chars = !t.is_empty()
        && t.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'))
        && t.bytes().any(|b| b.is_ascii_digit());
    if !valid_chars {
        return Err(DecimalError::NotANumber(text.to_string()));
    }
    let parsed = if t.contains(['e', 'E']) {
        Decimal::from_scientific(t)
    } else {
        Decimal::from_str_exact(t)
    };
    // rust_decimal refuses both malformed text and numbers it cannot hold, mostly with the same
    // error variant; well-formed text it refuses is out of range.
    parsed.map_err(|_| {
        if is_number_syntax(t) {
            DecimalError::OutOfRange(text.to_string())
        } else {
            DecimalError::NotANumber(text.to_string())
        }
    })
}

/// `[+-]digits[.digits][(e|E)[+-]digits]`, with digits on at least one side of the point.
fn is_number_syntax(t: &str) -> bool {
    fn digits(s: &[u8]) -> usize {
        s.iter().take_while(|b| b.is_ascii_digit()).count()
    }
    let b = t.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let int = digits(&b[i..]);
    i += int;
    let mut frac = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        frac = digits(&b[i..]);
        i += frac;
    }
    if int + frac == 0 {
        return false;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        i += usize::from(matches!(b.get(i), Some(b'+' | b'-')));
        let exp = digits(&b[i..]);
        if exp == 0 {
            return false;
        }
        i += exp;
    }
    i == b.len()
}

/// Parses an input amount: [`parse_decimal`] plus the range limits of this module.
pub fn parse_amount(text: &str) -> Result<Decimal, DecimalError> {
    let d = parse_decimal(text)?;
    check_amount(d).map_err(|_| DecimalError::OutOfRange(text.to_string()))
}

/// Checks the magnitude and precision limits of an input amount.
pub fn check_amount(d: Decimal) -> Result<Decimal, DecimalError> {
    let d = if d.scale() > MAX_AMOUNT_SCALE {
        d.normalize()
    } else {
        d
    };
    if d.abs() >= MAX_AMOUNT_EXCLUSIVE || d.scale() > MAX_AMOUNT_SCALE {
        return Err(DecimalError::OutOfRange(d.to_string()));
    }
    Ok(d)
}

/// Converts a float from a configuration file by its shortest round-trip text, so `0.3` becomes
/// exactly `0.3` rather than the binary approximation.
pub fn decimal_from_config_float(f: f64) -> Result<Decimal, DecimalError> {
    if !f.is_finite() {
        return Err(DecimalError::NotANumber(f.to_string()));
    }
    let text = format!("{f}");
    Decimal::from_str(&text)
        .or_else(|_| Decimal::from_scientific(&format!("{f:e}")))
        .map_err(|_| DecimalError::OutOfRange(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_constant_is_ten_to_the_eighteen() {
        assert_eq!(
            MAX_AMOUNT_EXCLUSIVE,
            Decimal::from(1_000_000_000_000_000_000u64)
        );
    }

    #[test]
    fn parses_exactly() {
        assert_eq!(parse_decimal("0.1").unwrap().to_string(), "0.1");
        assert_eq!(parse_decimal("1054").unwrap(), Decimal::from(1054));
        assert_eq!(parse_decimal("-3.50").unwrap().to_string(), "-3.50");
        assert_eq!(parse_decimal("1.5e3").unwrap(), Decimal::from(1500));
        assert_eq!(parse_decimal("25E-2").unwrap().to_string(), "0.25");
        for bad in ["", "abc", "NaN", "inf", "0x10", "1,5", "--1"] {
            assert!(parse_decimal(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn amount_limits() {
        assert!(parse_amount("999999999999999999.99").is_ok());
        assert!(matches!(
            parse_amount("1e18"),
            Err(DecimalError::OutOfRange(_))
        ));
        assert!(matches!(
            parse_amount("0.00000000001"),
            Err(DecimalError::OutOfRange(_))
        ));
        assert!(
            parse_amount("1.50000000000000").is_ok(),
            "trailing zeros beyond scale are fine"
        );
        assert!(parse_amount("1e400").is_err());
    }

    #[test]
    fn out_of_range_is_told_from_not_a_number() {
        for big in [
            "1e400",
            "-1e400",
            "123456789012345678901234567890123",
            "1.0000000000000000000000000000000000001e-30",
        ] {
            assert!(
                matches!(parse_decimal(big), Err(DecimalError::OutOfRange(_))),
                "{big}: {:?}",
                parse_decimal(big)
            );
        }
        for bad in [
            "1.2.3", "1e", "e5", ".", "-", "1e+", "1-2", "+.e1", "1.5e3.2",
        ] {
            assert!(
                matches!(parse_decimal(bad), Err(DecimalError::NotANumber(_))),
                "{bad}: {:?}",
                parse_decimal(bad)
            );
        }
        for good in [".5", "5.", "+1", "-0.0", "1E+2", "2e-3"] {
            assert!(parse_decimal(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn config_floats_are_shortest_text() {
        assert_eq!(decimal_from_config_float(0.3).unwrap().to_string(), "0.3");
        assert_eq!(
            decimal_from_config_float(400000.0).unwrap(),
            Decimal::from(400000)
        );
        assert!(decimal_from_config_float(f64::NAN).is_err());
    }
}
