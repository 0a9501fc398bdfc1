use super::*;

#[test]
fn parses_hub_urls() {
    let a = HubAddr::parse("https://hub.example:8443/").unwrap();
    assert_eq!(a.url(), "https://hub.example:8443");
    assert_eq!(a.port, 8443);
    let b = HubAddr::parse("https://127.0.0.1").unwrap();
    assert_eq!(b.port, 443);
    assert!(matches!(b.server_name(), ServerName::IpAddress(_)));
    let c = HubAddr::parse("https://[::1]:9000").unwrap();
    assert_eq!(c.host, "::1");
    assert!(HubAddr::parse("http://hub.example").is_err());
    assert!(HubAddr::parse("hub.example").is_err());
}
