use http::HeaderValue;

use super::*;

// The official Standard Webhooks library test vector (PLATFORMS.md).
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const MSG_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const TS: i64 = 1_614_265_330;
const BODY: &[u8] = br#"{"test": 2432232314}"#;
const SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

fn secret() -> StandardSecret {
    StandardSecret::parse(SECRET).unwrap()
}

fn headers(id: &str, ts: &str, sig: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("webhook-id", HeaderValue::from_str(id).unwrap());
    h.insert("webhook-timestamp", HeaderValue::from_str(ts).unwrap());
    h.insert("webhook-signature", HeaderValue::from_str(sig).unwrap());
    h
}

fn official(sig: &str) -> HeaderMap {
    headers(MSG_ID, &TS.to_string(), sig)
}

#[test]
fn official_vector_signs_and_verifies() {
    assert_eq!(sign(&secret(), MSG_ID, TS, BODY), SIG);
    assert_eq!(verify(&official(SIG), BODY, &[secret()], TS), Ok(()));
    assert_eq!(secret().expose_whsec(), SECRET);
}

#[test]
fn any_matching_signature_or_secret_accepts() {
    let other = StandardSecret::from_bytes(vec![9; 32]).unwrap();
    // Several signatures (a sender mid-rotation), unknown versions skipped.
    let list = format!("v1a,abc v1,{} v2,xyz {SIG}", "A".repeat(44));
    assert_eq!(verify(&official(&list), BODY, &[secret()], TS), Ok(()));
    // Several secrets (we are mid-rotation).
    assert_eq!(verify(&official(SIG), BODY, &[other.clone(), secret()], TS), Ok(()));
    assert_eq!(verify(&official(SIG), BODY, &[other], TS), Err(VerifyError::BadSignature));
}

#[test]
fn forged_tampered_and_replayed_fail() {
    let zeros = format!("v1,{}", STANDARD.encode([0u8; 32]));
    assert_eq!(verify(&official(&zeros), BODY, &[secret()], TS), Err(VerifyError::BadSignature));
    assert_eq!(verify(&official(SIG), br#"{"test": 2432232315}"#, &[secret()], TS), Err(VerifyError::BadSignature));
    let other_id = headers("msg_other", &TS.to_string(), SIG);
    assert_eq!(verify(&other_id, BODY, &[secret()], TS), Err(VerifyError::BadSignature));
    let moved = headers(MSG_ID, &(TS + 1).to_string(), SIG);
    assert_eq!(verify(&moved, BODY, &[secret()], TS), Err(VerifyError::BadSignature));
}

#[test]
fn tolerance_is_five_minutes_both_ways() {
    let s = [secret()];
    assert_eq!(verify(&official(SIG), BODY, &s, TS + 300), Ok(()));
    assert_eq!(verify(&official(SIG), BODY, &s, TS - 300), Ok(()));
    assert_eq!(verify(&official(SIG), BODY, &s, TS + 301), Err(VerifyError::StaleTimestamp));
    assert_eq!(verify(&official(SIG), BODY, &s, TS - 301), Err(VerifyError::FutureTimestamp));
}

#[test]
fn malformed_and_missing_headers_fail() {
    let s = [secret()];
    let ts = TS.to_string();
    for (h, name) in [
        (headers(MSG_ID, "16142653300000000000", SIG), TIMESTAMP_HEADER),
        (headers(MSG_ID, "1614265330.0", SIG), TIMESTAMP_HEADER),
        (headers(MSG_ID, "soon", SIG), TIMESTAMP_HEADER),
        (headers(MSG_ID, &ts, "v1,not-base64!"), SIGNATURE_HEADER),
        (headers(MSG_ID, &ts, "v1,AAAA"), SIGNATURE_HEADER),
        (headers(MSG_ID, &ts, "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="), SIGNATURE_HEADER),
        (headers(MSG_ID, &ts, "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="), SIGNATURE_HEADER),
        (headers(MSG_ID, &ts, &vec![SIG; 17].join(" ")), SIGNATURE_HEADER),
    ] {
        assert_eq!(verify(&h, BODY, &s, TS), Err(VerifyError::BadHeader(name)));
    }
    for name in [ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER] {
        let mut h = official(SIG);
        h.remove(name);
        assert_eq!(verify(&h, BODY, &s, TS), Err(VerifyError::MissingHeader(name)));
    }
    assert_eq!(verify(&official(SIG), BODY, &[], TS), Err(VerifyError::InvalidKey));
}

#[test]
fn svix_headers_are_accepted() {
    let mut h = HeaderMap::new();
    h.insert("svix-id", HeaderValue::from_static(MSG_ID));
    h.insert("svix-timestamp", HeaderValue::from_static("1614265330"));
    h.insert("svix-signature", HeaderValue::from_static(SIG));
    assert_eq!(verify(&h, BODY, &[secret()], TS), Ok(()));
}

#[test]
fn secrets_are_validated_and_redacted() {
    assert!(StandardSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_ok());
    for bad in ["whsec_", "whsec_***", "whsec_AAAA", &format!("whsec_{}", STANDARD.encode([1u8; 65]))] {
        assert_eq!(StandardSecret::parse(bad), Err(VerifyError::InvalidKey), "{bad}");
    }
    assert_eq!(format!("{:?}", secret()), "StandardSecret(<redacted>)");
}
