//! Delivery signatures, on Stripe's model: `Subdesk-Signature: t=<unix seconds>,v1=<hex
//! HMAC-SHA256(secret, "<t>.<raw body>")>`, with one `v1` per valid secret (two while a rotated
//! secret's overlap lasts). A receiver recomputes the HMAC over the raw body with its secret,
//! compares in constant time against any `v1`, and refuses a `t` too far from its clock.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The header name.
pub const HEADER: &str = "subdesk-signature";

fn mac(secret: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
    // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The header value for `body` sent at `timestamp`, signed with each of `secrets`.
pub fn header_value(secrets: &[&str], timestamp: i64, body: &[u8]) -> String {
    let mut parts = vec![format!("t={timestamp}")];
    for secret in secrets {
        parts.push(format!(
            "v1={}",
            hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
        ));
    }
    parts.join(",")
}

/// Whether `header` signs `body` with `secret` at a time within `tolerance_seconds` of `now`
/// (what a receiver checks; the tests' receiver uses it).
pub fn verify(header: &str, secret: &str, body: &[u8], now: i64, tolerance_seconds: i64) -> bool {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", v)) => signatures.extend(hex::decode(v).ok()),
            _ => {}
        }
    }
    let Some(timestamp) = timestamp else {
        return false;
    };
    if (now - timestamp).abs() > tolerance_seconds {
        return false;
    }
    signatures
        .iter()
        .any(|signature| mac(secret, timestamp, body).verify_slice(signature).is_ok())
}

/// A new secret: `whsec_` and 32 random bytes in hex.
pub fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("whsec_{}", hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_with_its_secret_only_and_within_the_tolerance() {
        let body = br#"{"id":"evt_1"}"#;
        let header = header_value(&["whsec_a"], 1_000, body);
        assert!(verify(&header, "whsec_a", body, 1_100, 300));
        assert!(!verify(&header, "whsec_b", body, 1_100, 300));
        assert!(!verify(&header, "whsec_a", b"{}", 1_100, 300));
        assert!(!verify(&header, "whsec_a", body, 2_000, 300));
        assert!(!verify("v1=00", "whsec_a", body, 1_000, 300));
    }

    #[test]
    fn during_a_rotation_both_secrets_verify() {
        let body = b"{}";
        let header = header_value(&["whsec_new", "whsec_old"], 50, body);
        assert_eq!(header.matches("v1=").count(), 2);
        assert!(verify(&header, "whsec_new", body, 50, 300));
        assert!(verify(&header, "whsec_old", body, 50, 300));
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_the_timestamp_a_dot_and_the_body() {
        // RFC 4231-style check against an independent computation of the same MAC.
        let mut mac = <HmacSha256 as Mac>::new_from_slice(b"key").expect("key");
        mac.update(b"7.body");
        let expected = hex::encode(mac.finalize().into_bytes());
        assert_eq!(
            header_value(&["key"], 7, b"body"),
            format!("t=7,v1={expected}")
        );
    }
}
