//! A bad configuration stops the real binary with exit code 64 and names the field.

use tether_e2e::TestDir;

use super::support::hub_cmd;

/// Starts `serve --config` on `yaml`; returns (exit code, stderr).
async fn serve_with(dir: &TestDir, yaml: &str) -> (Option<i32>, String) {
    let file = dir.path().join("bad.yaml");
    std::fs::write(&file, yaml).expect("write config");
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        hub_cmd(&["serve", "--config", &file.display().to_string()]),
    )
    .await
    .expect("a bad config must fail fast, not hang");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const BASE: &str = r#"issuer: https://127.0.0.1:9
listen: 127.0.0.1:9
tls: {self_signed: true, self_signed_dir: /nonexistent}
metrics: {listen: 127.0.0.1:10}
storage: {url: "sqlite:///nonexistent/hub.db"}
"#;

#[tokio::test]
async fn bad_configuration_exits_64_naming_the_field() {
    let dir = TestDir::new("hub-config").expect("test dir");
    let cases = [
        (
            "keys: {kek_file: /k, rotation_interval: 5 parsecs}\n",
            "keys.rotation_interval",
        ),
        ("keys: {kek_file: /k, clock_skwe: 30s}\n", "clock_skwe"),
        (
            "keys: {kek_file: /k, publish_lead: 2s, refresh_interval: 1s}\n",
            "keys.publish_lead",
        ),
        (
            "keys: {kek_file: /k}\nupstream: {issuer: not a url, client_id: x}\n",
            "upstream.issuer",
        ),
        (
            "keys: {kek_file: /k}\ntokens: {cluster_token_lifetime: 2h}\n",
            "tokens.cluster_token_lifetime",
        ),
    ];
    for (extra, field) in cases {
        let (code, stderr) = serve_with(&dir, &format!("{BASE}{extra}")).await;
        assert_eq!(code, Some(64), "{field}: exit code; stderr: {stderr}");
        assert!(stderr.contains(field), "{field} not named in: {stderr}");
    }
    // An http issuer is refused unless explicitly allowed.
    let http = BASE.replace("https://", "http://") + "keys: {kek_file: /k}\n";
    let (code, stderr) = serve_with(&dir, &http).await;
    assert_eq!(code, Some(64), "{stderr}");
    assert!(stderr.contains("issuer"), "{stderr}");
}
