use std::time::Duration;

use http::HeaderValue;
use http::header::{self, HeaderMap};

use super::{TokenFile, is_long_lived, strip_hop_by_hop};

#[test]
fn hop_by_hop_headers_are_removed() {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONNECTION,
        HeaderValue::from_static("keep-alive, x-private"),
    );
    headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
    headers.insert("x-private", HeaderValue::from_static("1"));
    headers.insert(header::TE, HeaderValue::from_static("trailers"));
    headers.insert(
        header::TRANSFER_ENCODING,
        HeaderValue::from_static("chunked"),
    );
    headers.insert(header::UPGRADE, HeaderValue::from_static("h2c"));
    headers.insert("proxy-connection", HeaderValue::from_static("close"));
    headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    strip_hop_by_hop(&mut headers);
    assert_eq!(headers.len(), 1, "{headers:?}");
    assert!(headers.contains_key(header::ACCEPT));
}

#[test]
fn each_hop_by_hop_header_is_removed_when_it_is_the_only_one() {
    // The fast path looks for any of them before removing: each must be found on its own.
    for name in [
        "connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-authorization",
        "proxy-authenticate",
        "keep-alive",
        "proxy-connection",
    ] {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_static("x"));
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1, "{name}: {headers:?}");
        assert!(headers.contains_key(header::ACCEPT), "{name}");
    }
}

#[test]
fn headers_without_hop_by_hop_ones_are_kept() {
    let mut headers = HeaderMap::new();
    headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    headers.append("x-kept", HeaderValue::from_static("1"));
    headers.append("x-kept", HeaderValue::from_static("2"));
    let before = headers.clone();
    strip_hop_by_hop(&mut headers);
    assert_eq!(headers, before);
}

#[test]
fn token_file_is_reread_when_it_changes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, "first\n").unwrap();
    let tokens = TokenFile::open(path.clone(), Duration::ZERO).unwrap();
    assert_eq!(tokens.token().expose(), "first");
    // A different mtime, even on filesystems with coarse timestamps.
    std::fs::write(&path, "second").unwrap();
    let later = std::time::SystemTime::now() + Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(later)
        .unwrap();
    assert_eq!(tokens.token().expose(), "second");
    // A broken file keeps the last good token.
    std::fs::write(&path, "").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(later + Duration::from_secs(5))
        .unwrap();
    assert_eq!(tokens.token().expose(), "second");
}

#[test]
fn token_file_is_not_rechecked_within_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, "first").unwrap();
    let tokens = TokenFile::open(path.clone(), Duration::from_secs(3600)).unwrap();
    std::fs::write(&path, "second").unwrap();
    assert_eq!(tokens.token().expose(), "first");
}

#[test]
fn empty_token_file_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, "  \n").unwrap();
    assert!(TokenFile::open(path, Duration::ZERO).is_err());
}

#[test]
fn bearer_follows_the_token_file_and_is_sensitive() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, "first\n").unwrap();
    let tokens = TokenFile::open(path.clone(), Duration::ZERO).unwrap();
    let bearer = tokens.bearer();
    assert_eq!(bearer.as_bytes(), b"Bearer first");
    assert!(bearer.is_sensitive());
    assert!(!format!("{bearer:?}").contains("first"));
    std::fs::write(&path, "second").unwrap();
    let later = std::time::SystemTime::now() + Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(later)
        .unwrap();
    assert_eq!(tokens.bearer().as_bytes(), b"Bearer second");
    assert!(tokens.bearer().is_sensitive());
    // A token that cannot be a header value is kept out, like an unreadable one.
    std::fs::write(&path, "bad\x01token").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(later + Duration::from_secs(5))
        .unwrap();
    assert_eq!(tokens.bearer().as_bytes(), b"Bearer second");
    assert_eq!(tokens.token().expose(), "second");
}

#[test]
fn token_file_with_header_breaking_characters_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, "abc\ndef").unwrap();
    assert!(TokenFile::open(path, Duration::ZERO).is_err());
}

#[test]
fn long_lived_requests_are_recognised() {
    for (path, want) in [
        ("/api/v1/namespaces/default/configmaps?watch=true", true),
        (
            "/api/v1/pods?labelSelector=a%3Db&watch=1&resourceVersion=5",
            true,
        ),
        ("/api/v1/watch/namespaces/default/pods", true),
        (
            "/api/v1/namespaces/default/pods/p/log?follow=true&container=c",
            true,
        ),
        ("/api/v1/namespaces/default/pods/p/log?follow=false", false),
        ("/api/v1/namespaces/default/configmaps/bench", false),
        ("/api/v1/namespaces/watchers/pods?watchful=true", false),
    ] {
        assert_eq!(is_long_lived(path), want, "{path}");
    }
}
