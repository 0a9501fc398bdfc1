use tonic::service::Interceptor;

use super::*;

#[test]
fn bearer_sets_a_sensitive_authorization_header() {
    let mut bearer = Bearer::new("abc.def").unwrap();
    let request = bearer.call(Request::new(())).unwrap();
    let value = request.metadata().get(AUTHORIZATION).unwrap();
    assert_eq!(value.to_str().unwrap(), "Bearer abc.def");
    assert!(value.is_sensitive());
    assert_eq!(format!("{bearer:?}"), "Bearer(<redacted>)");
}

#[test]
fn bearer_refuses_unsendable_tokens() {
    assert!(matches!(Bearer::new("a\nb"), Err(Error::BadToken(_))));
}

#[test]
fn deadlines_are_recognised() {
    assert!(is_deadline(&Status::deadline_exceeded("late")));
    assert!(is_deadline(&Status::cancelled("Timeout expired")));
    assert!(!is_deadline(&Status::cancelled("client went away")));
    assert!(!is_deadline(&Status::unavailable("x")));
}
