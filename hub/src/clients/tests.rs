use tether_common::secret::Secret;

use super::*;

const ARGO_SECRET: &str = "argo-secret-value";

fn argocd() -> ClientConfig {
    ClientConfig {
        id: "argocd".to_owned(),
        kind: ClientKind::Confidential,
        secret_hash: Some(hash_secret(&Secret::new(ARGO_SECRET))),
        redirect_uris: vec![Url::parse("https://argocd.example.com/auth/callback").unwrap()],
        native: false,
        token_exchange: vec!["prod-*".to_owned()],
        post_logout_redirect_uris: vec![Url::parse("https://argocd.example.com/").unwrap()],
        device_grant: false,
    }
}

fn cli(native: bool, uris: &[&str]) -> ClientConfig {
    ClientConfig {
        id: "cli".to_owned(),
        kind: ClientKind::Public,
        secret_hash: None,
        redirect_uris: uris.iter().map(|u| Url::parse(u).unwrap()).collect(),
        native,
        token_exchange: Vec::new(),
        post_logout_redirect_uris: Vec::new(),
        device_grant: false,
    }
}

fn clients() -> Clients {
    Clients::new(&[
        argocd(),
        cli(true, &["http://127.0.0.1/cb", "http://localhost/cb"]),
    ])
    .unwrap()
}

#[test]
fn hash_secret_format() {
    let hash = hash_secret(&Secret::new("abc"));
    assert_eq!(
        hash,
        "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert!(config::parse_secret_hash(&hash).is_some());
    assert!(config::parse_secret_hash(&hash.to_uppercase().replace("SHA256", "sha256")).is_some());
    assert!(config::parse_secret_hash("sha256:abc").is_none());
    assert!(config::parse_secret_hash("abc").is_none());
    let generated = generate_secret().unwrap();
    assert_eq!(generated.expose().len(), 43);
}

#[test]
fn confidential_client_authentication() {
    let clients = clients();
    let ok = clients
        .authenticate("argocd", Some(&Secret::new(ARGO_SECRET)))
        .unwrap();
    assert_eq!(ok.id(), "argocd");
    assert!(!ok.is_public());
    assert!(matches!(
        clients.authenticate("argocd", Some(&Secret::new("argo-secret-valuf"))),
        Err(ClientError::InvalidSecret(_))
    ));
    assert!(matches!(
        clients.authenticate("argocd", Some(&Secret::new(""))),
        Err(ClientError::InvalidSecret(_))
    ));
    assert!(matches!(
        clients.authenticate("argocd", None),
        Err(ClientError::MissingSecret(_))
    ));
    assert!(matches!(
        clients.authenticate("nobody", Some(&Secret::new(ARGO_SECRET))),
        Err(ClientError::UnknownClient(_))
    ));
    // The hash is compared, not the secret: the hash itself is not a secret that works.
    let hash = hash_secret(&Secret::new(ARGO_SECRET));
    assert!(
        clients
            .authenticate("argocd", Some(&Secret::new(hash)))
            .is_err()
    );
    // Debug never shows the digest.
    let shown = format!("{:?}", clients.get("argocd").unwrap());
    assert!(
        shown.contains("has_secret: true") && !shown.contains("ba78"),
        "{shown}"
    );
}

#[test]
fn public_client_authentication() {
    let clients = clients();
    assert!(clients.authenticate("cli", None).unwrap().is_public());
    assert!(matches!(
        clients.authenticate("cli", Some(&Secret::new("x"))),
        Err(ClientError::UnexpectedSecret(_))
    ));
    let tetherctl = clients.authenticate(TETHERCTL_CLIENT_ID, None).unwrap();
    assert!(tetherctl.is_public() && tetherctl.is_native());
}

#[test]
fn exact_redirects_for_web_clients() {
    let clients = clients();
    let argocd = clients.get("argocd").unwrap();
    assert!(argocd.redirect_allowed("https://argocd.example.com/auth/callback"));
    for bad in [
        "https://argocd.example.com/auth/callback/",
        "https://argocd.example.com/auth/callback?x=1",
        "https://argocd.example.com:8443/auth/callback",
        "https://argocd.example.com.evil.com/auth/callback",
        "http://argocd.example.com/auth/callback",
        "https://argocd.example.com/auth/callback#frag",
        "",
    ] {
        assert!(!argocd.redirect_allowed(bad), "{bad}");
    }
    assert!(argocd.post_logout_redirect_allowed("https://argocd.example.com/"));
    assert!(!argocd.post_logout_redirect_allowed("https://evil.com/"));
}

#[test]
fn loopback_redirects_for_native_clients() {
    let clients = clients();
    let cli = clients.get("cli").unwrap();
    for good in [
        "http://127.0.0.1/cb",
        "http://127.0.0.1:8080/cb",
        "http://127.0.0.1:53123/cb",
        "http://[::1]:53123/cb",
        "http://localhost/cb",
    ] {
        assert!(cli.redirect_allowed(good), "{good}");
    }
    for bad in [
        "http://127.0.0.1.evil.com:8080/cb",
        "http://127.0.0.1:8080/cb/",
        "http://127.0.0.1:8080/other",
        "http://127.0.0.1:8080/cb?x=1",
        "http://127.0.0.1:8080/cb#x",
        "http://user@127.0.0.1:8080/cb",
        "https://127.0.0.1:8080/cb",
        "http://127.0.0.2:8080/cb",
        "http://0x7f.1:8080/cb",
        "http://2130706433:8080/cb",
        // localhost is matched exactly, never with port variance.
        "http://localhost:8080/cb",
        "http://evil.com/cb",
    ] {
        assert!(!cli.redirect_allowed(bad), "{bad}");
    }
}

#[test]
fn port_variance_only_for_native_clients() {
    let clients = Clients::new(&[cli(false, &["http://127.0.0.1:9000/cb"])]).unwrap();
    let web = clients.get("cli").unwrap();
    assert!(web.redirect_allowed("http://127.0.0.1:9000/cb"));
    assert!(!web.redirect_allowed("http://127.0.0.1:9001/cb"));
    assert!(!web.redirect_allowed("http://127.0.0.1/cb"));
}

#[test]
fn tetherctl_is_built_in() {
    let clients = Clients::new(&[]).unwrap();
    let tetherctl = clients.get(TETHERCTL_CLIENT_ID).unwrap();
    assert!(tetherctl.redirect_allowed("http://127.0.0.1:41111/callback"));
    assert!(tetherctl.redirect_allowed("http://[::1]:41111/callback"));
    assert!(!tetherctl.redirect_allowed("http://localhost:41111/callback"));
    for name in ["a", "prod-eu", "x-1"] {
        assert!(tetherctl.may_exchange_for(&ClusterName::parse(name).unwrap()));
    }
}

#[test]
fn exchange_globs() {
    let clients = clients();
    let argocd = clients.get("argocd").unwrap();
    let name = |s: &str| ClusterName::parse(s).unwrap();
    assert!(argocd.may_exchange_for(&name("prod-eu")));
    assert!(!argocd.may_exchange_for(&name("dev")));
    assert!(!argocd.may_exchange_for(&name("prod")));
    assert!(
        !clients
            .get("cli")
            .unwrap()
            .may_exchange_for(&name("prod-eu")),
        "empty = none"
    );
    for (glob, input, expected) in [
        ("*", "x", true),
        ("prod-?", "prod-1", true),
        ("prod-?", "prod-12", false),
        ("*-eu", "prod-eu", true),
        ("*-eu", "prod-us", false),
        ("a*b*c", "aXbYc", true),
        ("a*b*c", "aXbY", false),
        ("exact", "exact", true),
        ("exact", "exactly", false),
    ] {
        assert_eq!(glob_matches(glob, input), expected, "{glob} {input}");
    }
}

#[test]
fn validation() {
    let check = |clients: Vec<ClientConfig>, field: &str| {
        let (got, reason) = validate_clients(&clients).unwrap_err();
        assert_eq!(got, field, "{reason}");
        assert!(matches!(
            Clients::new(&clients),
            Err(ClientError::InvalidConfig { .. })
        ));
    };
    validate_clients(&[argocd(), cli(true, &["http://127.0.0.1/cb"])]).unwrap();

    check(
        vec![ClientConfig {
            id: String::new(),
            ..argocd()
        }],
        "clients[0].id",
    );
    check(
        vec![ClientConfig {
            id: "tether:cluster:x".into(),
            ..argocd()
        }],
        "clients[0].id",
    );
    check(
        vec![ClientConfig {
            id: "tetherctl".into(),
            ..argocd()
        }],
        "clients[0].id",
    );
    check(
        vec![ClientConfig {
            id: "a b".into(),
            ..argocd()
        }],
        "clients[0].id",
    );
    check(vec![argocd(), argocd()], "clients[1].id");
    check(
        vec![ClientConfig {
            secret_hash: None,
            ..argocd()
        }],
        "clients[0].secret_hash",
    );
    check(
        vec![ClientConfig {
            secret_hash: Some("hunter2".into()),
            ..argocd()
        }],
        "clients[0].secret_hash",
    );
    check(
        vec![ClientConfig {
            secret_hash: Some(hash_secret(&Secret::new("x"))),
            ..cli(true, &["http://127.0.0.1/cb"])
        }],
        "clients[0].secret_hash",
    );
    check(vec![cli(true, &[])], "clients[0].redirect_uris");
    check(
        vec![cli(true, &["https://app.example/cb#frag"])],
        "clients[0].redirect_uris[0]",
    );
    check(
        vec![cli(true, &["https://u:p@app.example/cb"])],
        "clients[0].redirect_uris[0]",
    );
    check(
        vec![ClientConfig {
            token_exchange: vec!["Prod".into()],
            ..argocd()
        }],
        "clients[0].token_exchange[0]",
    );
    check(
        vec![ClientConfig {
            post_logout_redirect_uris: vec![Url::parse("https://x.example/#f").unwrap()],
            ..argocd()
        }],
        "clients[0].post_logout_redirect_uris[0]",
    );
}

#[test]
fn config_from_yaml() {
    let yaml = "- id: web\n  kind: confidential\n  secret_hash: sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n  redirect_uris: [https://web.example/cb]\n";
    let parsed: Vec<ClientConfig> = crate::config::parse_yaml(yaml).unwrap();
    assert_eq!(parsed[0].kind, ClientKind::Confidential);
    assert!(!parsed[0].native);
    assert!(!parsed[0].device_grant);
    let unknown =
        "- id: web\n  kind: public\n  secret: x\n  redirect_uris: [https://web.example/cb]\n";
    assert!(crate::config::parse_yaml::<Vec<ClientConfig>>(unknown).is_err());
    let kind = "- id: web\n  kind: secret\n  redirect_uris: [https://web.example/cb]\n";
    assert!(crate::config::parse_yaml::<Vec<ClientConfig>>(kind).is_err());
}

#[test]
fn device_grant_is_opt_in_except_for_tetherctl() {
    let clients = Clients::new(&[
        argocd(),
        ClientConfig {
            device_grant: true,
            ..cli(true, &["http://127.0.0.1/cb"])
        },
    ])
    .unwrap();
    assert!(
        clients
            .get(TETHERCTL_CLIENT_ID)
            .unwrap()
            .may_use_device_grant()
    );
    assert!(!clients.get("argocd").unwrap().may_use_device_grant());
    assert!(clients.get("cli").unwrap().may_use_device_grant());
    let yaml = "- id: tv\n  kind: public\n  device_grant: true\n  redirect_uris: [https://tv.example/cb]\n";
    let parsed: Vec<ClientConfig> = crate::config::parse_yaml(yaml).unwrap();
    assert!(parsed[0].device_grant);
}
