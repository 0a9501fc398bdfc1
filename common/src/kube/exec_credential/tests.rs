use super::*;

fn credential(version: ExecApiVersion) -> ExecCredential {
    // 2025-01-02T03:04:05Z
    ExecCredential::new(
        version,
        Secret::new("tok.en.value"),
        UnixTime::from_secs(1_735_787_045),
    )
}

#[test]
fn v1_json() {
    let json = credential(ExecApiVersion::V1).to_json();
    assert!(json.ends_with('\n'));
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        doc,
        serde_json::json!({
            "apiVersion": "client.authentication.k8s.io/v1",
            "kind": "ExecCredential",
            "status": {"token": "tok.en.value", "expirationTimestamp": "2025-01-02T03:04:05Z"},
        })
    );
}

#[test]
fn v1beta1_json() {
    let doc: serde_json::Value =
        serde_json::from_str(&credential(ExecApiVersion::V1Beta1).to_json()).unwrap();
    assert_eq!(doc["apiVersion"], "client.authentication.k8s.io/v1beta1");
    assert_eq!(doc["kind"], "ExecCredential");
    assert_eq!(doc["status"]["token"], "tok.en.value");
}

#[test]
fn debug_hides_the_token() {
    let text = format!("{:?}", credential(ExecApiVersion::V1));
    assert!(!text.contains("tok.en.value"), "{text}");
}

#[test]
fn exec_info_from_kubectl() {
    let info = ExecInfo::from_env_value(Some(
        r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1beta1","spec":{"interactive":true,"cluster":{"server":"https://x"}}}"#,
    ))
    .unwrap();
    assert_eq!(info.api_version, ExecApiVersion::V1Beta1);
    assert!(info.interactive);

    let info = ExecInfo::from_env_value(Some(
        r#"{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","spec":{}}"#,
    ))
    .unwrap();
    assert_eq!(info.api_version, ExecApiVersion::V1);
    assert!(!info.interactive);
}

#[test]
fn exec_info_defaults_to_v1() {
    for value in [None, Some(""), Some("  ")] {
        let info = ExecInfo::from_env_value(value).unwrap();
        assert_eq!(info.api_version, ExecApiVersion::V1);
        assert!(!info.interactive);
    }
}

#[test]
fn exec_info_refuses_what_it_cannot_answer() {
    let err = ExecInfo::from_env_value(Some(
        r#"{"apiVersion":"client.authentication.k8s.io/v1alpha1","kind":"ExecCredential"}"#,
    ))
    .unwrap_err();
    assert!(
        matches!(err, ExecCredentialError::UnsupportedVersion(ref v) if v.ends_with("v1alpha1"))
    );
    assert!(err.to_string().contains("client.authentication.k8s.io/v1"));
    let err = ExecInfo::from_env_value(Some("{not json")).unwrap_err();
    assert!(matches!(err, ExecCredentialError::BadExecInfo(_)));
}

#[test]
fn rfc3339_utc() {
    assert_eq!(rfc3339(UnixTime::EPOCH), "1970-01-01T00:00:00Z");
    assert_eq!(
        rfc3339(UnixTime::from_secs(951_782_400)),
        "2000-02-29T00:00:00Z"
    );
    assert_eq!(rfc3339(UnixTime::from_secs(-5)), "1970-01-01T00:00:00Z");
}
