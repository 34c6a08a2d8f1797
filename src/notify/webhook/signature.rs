//! Request signatures: `X-Goalpost-Signature: v1=<hex HMAC-SHA256(secret, "{timestamp}.{body}")>`.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header carrying the signing time (unix seconds).
pub const TIMESTAMP_HEADER: &str = "X-Goalpost-Timestamp";
/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "X-Goalpost-Signature";

/// A webhook's HMAC key. Never shown: its `Debug` is redacted.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// A key from its bytes.
    pub fn new(bytes: Vec<u8>) -> Secret {
        Secret(bytes)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// The signature header's value for `body` sent at `timestamp` (unix seconds): `v1=` and the
/// lowercase hex HMAC-SHA256 of `"{timestamp}.{body}"` keyed with `secret`.
pub fn sign(secret: &Secret, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(&secret.0).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let mut out = String::from("v1=");
    for b in mac.finalize().into_bytes() {
        use std::fmt::Write;
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answer() {
        // python3: hmac.new(b"whsec_test", b'1700000000.{"a":1}', hashlib.sha256).hexdigest()
        let s = sign(
            &Secret::new(b"whsec_test".to_vec()),
            1_700_000_000,
            b"{\"a\":1}",
        );
        assert_eq!(
            s,
            "v1=38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789"
        );
    }

    #[test]
    fn covers_timestamp_body_and_key() {
        let k = Secret::new(b"k".to_vec());
        let base = sign(&k, 1, b"x");
        assert_ne!(base, sign(&k, 2, b"x"));
        assert_ne!(base, sign(&k, 1, b"y"));
        assert_ne!(base, sign(&Secret::new(b"j".to_vec()), 1, b"x"));
    }

    #[test]
    fn debug_hides_the_key() {
        assert!(!format!("{:?}", Secret::new(b"hunter2".to_vec())).contains("hunter2"));
    }
}
