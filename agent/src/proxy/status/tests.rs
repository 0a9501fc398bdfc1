use http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use serde_json::{Value, json};

use super::*;

#[test]
fn every_refusal_is_a_kubernetes_status() {
    let cases = [
        (
            ProxyError::Unauthorized("token expired"),
            401,
            "Unauthorized",
            "Unauthorized: token expired",
        ),
        (
            ProxyError::Forbidden("no".to_owned()),
            403,
            "Forbidden",
            "no",
        ),
        (
            ProxyError::BadRequest("bad".to_owned()),
            400,
            "BadRequest",
            "bad",
        ),
        (
            ProxyError::BadGateway("down".to_owned()),
            502,
            "BadGateway",
            "down",
        ),
        (
            ProxyError::ServiceUnavailable("wait".to_owned()),
            503,
            "ServiceUnavailable",
            "wait",
        ),
        (ProxyError::Internal, 500, "InternalError", "internal error"),
    ];
    for (err, code, reason, message) in cases {
        assert_eq!(err.status_code().as_u16(), code);
        let response: Response<Bytes> = err.clone().into_response();
        assert_eq!(response.status().as_u16(), code, "{err:?}");
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(
            response
                .headers()
                .get(WWW_AUTHENTICATE)
                .map(|v| v.to_str().unwrap()),
            (code == 401).then_some("Bearer realm=\"tether\""),
            "{err:?}"
        );
        let body: Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(
            body,
            json!({
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": message,
                "reason": reason,
                "code": code,
            })
        );
    }
}

#[test]
fn messages_are_json_escaped() {
    let err = ProxyError::Forbidden("users \"bob\\\" is forbidden\n".to_owned());
    let body: Value = serde_json::from_slice(&err.body()).unwrap();
    assert_eq!(body["message"], "users \"bob\\\" is forbidden\n");
}

#[test]
fn into_response_works_with_other_bodies() {
    let response: Response<Vec<u8>> = ProxyError::Internal.into_response();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body: Value = serde_json::from_slice(response.body()).unwrap();
    assert_eq!(body["reason"], "InternalError");
}
