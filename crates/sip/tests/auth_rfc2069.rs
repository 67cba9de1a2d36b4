//! Answering a challenge without qop (RFC 2069 compatibility, RFC 3261 §22.4, RFC 2617
//! §3.2.2.1): response = MD5(HA1:nonce:HA2), and no qop, nc or cnonce in the answer.

use sip::auth::respond_to_challenge;

#[test]
fn a_challenge_without_qop_is_answered_the_rfc_2069_way() {
    let uri = "sip:+14155550100@127.0.0.2:51829;transport=udp";
    let answer = respond_to_challenge(
        r#"Digest realm="telco.example", nonce="1666n3abcdef", algorithm=MD5, opaque="op1""#,
        "INVITE",
        uri,
        "trunk",
        "s3cret-trunk",
        "unused-cnonce",
        1,
    )
    .expect("answered");
    // MD5(MD5("trunk:telco.example:s3cret-trunk"):1666n3abcdef:MD5("INVITE:" uri)), worked
    // out independently (Python's hashlib).
    assert!(
        answer.contains(r#"response="ebbae16d20e404c44358c8c9221c8797""#),
        "{answer}"
    );
    assert!(answer.contains(r#"opaque="op1""#), "{answer}");
    for absent in ["qop=", "nc=", "cnonce="] {
        assert!(!answer.contains(absent), "{answer}");
    }
}
