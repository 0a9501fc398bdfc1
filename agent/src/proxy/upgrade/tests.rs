use http::HeaderValue;
use http::header::{HeaderMap, UPGRADE};

use super::{UpgradeKind, classify};

fn with_upgrade(value: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(UPGRADE, HeaderValue::from_str(value).unwrap());
    headers
}

#[test]
fn plain_request_is_not_an_upgrade() {
    assert_eq!(classify(&HeaderMap::new()), UpgradeKind::None);
}

#[test]
fn spdy_and_websocket_are_allowed_in_any_case() {
    for p in ["SPDY/3.1", "spdy/3.1", "websocket", "WebSocket"] {
        assert_eq!(
            classify(&with_upgrade(p)),
            UpgradeKind::Allowed(p.to_owned()),
            "{p}"
        );
    }
}

#[test]
fn other_protocols_are_refused() {
    for p in ["h2c", "SPDY/3", "websocket, h2c", "", "TLS/1.2"] {
        assert!(
            matches!(classify(&with_upgrade(p)), UpgradeKind::Refused(_)),
            "{p}"
        );
    }
}
