use super::*;

#[test]
fn split_needs_exactly_three_segments() {
    let parts = Parts::split("aa.bb.cc").unwrap();
    assert_eq!(
        (parts.header, parts.payload, parts.signature),
        ("aa", "bb", "cc")
    );
    assert_eq!(parts.signing_input, "aa.bb");
    assert!(Parts::split("..").is_ok());
    for bad in ["", "a", "a.b", "a.b.c.d", "...."] {
        assert_eq!(
            Parts::split(bad).unwrap_err(),
            VerifyError::WrongSegmentCount,
            "{bad:?}"
        );
    }
}

#[test]
fn base64url_is_strict() {
    assert_eq!(b64_encode([0xfb, 0xff]), "-_8");
    assert_eq!(b64_decode("-_8"), Some(vec![0xfb, 0xff]));
    for bad in ["-_8=", "+/8", "-_9", " -_8", "a"] {
        assert_eq!(b64_decode(bad), None, "{bad:?}");
    }
}

#[test]
fn headers_parse_strictly() {
    let parse = |s: &str| serde_json::from_str::<Header>(s);
    let header = parse(r#"{"alg":"ES256","kid":"k","typ":"JWT"}"#).unwrap();
    assert_eq!(
        (header.alg.as_deref(), header.kid.as_deref()),
        (Some("ES256"), Some("k"))
    );
    assert!(parse(r#"{"alg":"ES256","jku":"https://evil"}"#).is_err());
    assert!(parse(r#"{"alg":"ES256","kid":7}"#).is_err());
}

#[test]
fn json_segments_must_be_objects() {
    assert!(json_object(b"{}", Segment::Payload).is_ok());
    assert_eq!(
        json_object(b"[]", Segment::Payload).unwrap_err(),
        VerifyError::NotAnObject(Segment::Payload)
    );
    assert_eq!(
        json_object(b"{", Segment::Header).unwrap_err(),
        VerifyError::InvalidJson(Segment::Header)
    );
    assert_eq!(
        json_object(b"{}x", Segment::Header).unwrap_err(),
        VerifyError::InvalidJson(Segment::Header)
    );
}
