//! ArgoCD's ServiceAccount token for a 60-second spoke token, and every refusal with its
//! OAuth code and a reason that never echoes the token.

use serde_json::{Value, json};
use tether_common::time::{Clock as _, SystemClock};
use tether_common::token::{Algorithm, Jwks, KeySet, SigningKey, Verifier, VerifyOptions};
use tether_e2e::cluster::SA_ISSUER;

use super::env::{ARGOCD_NS, CONTROLLER, DEV_SPOKE, MachineEnv, SPOKE};

/// Asserts an OAuth error answer that names `says` and does not contain `token`.
fn assert_refused(answer: &(u16, Value), status: u16, code: &str, says: &str, token: &str) {
    let (got, body) = answer;
    assert_eq!(*got, status, "{body}");
    assert_eq!(body["error"], code, "{body}");
    let description = body["error_description"].as_str().unwrap_or_default();
    assert!(
        description.contains(says),
        "{description:?} should say {says:?}"
    );
    assert!(
        !body.to_string().contains(token),
        "the token leaked: {body}"
    );
}

#[tokio::test]
async fn serviceaccount_tokens_become_spoke_tokens_and_refusals_are_clear() {
    let env = MachineEnv::start("machine-exchange").await;

    // ArgoCD's controller: a 60 s token for spoke-a, signed by the hub, as the policy says.
    let token = env.token(CONTROLLER).await;
    let (status, body) = env.exchange(&token, SPOKE).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 60);
    assert_eq!(
        body["issued_token_type"],
        "urn:ietf:params:oauth:token-type:jwt"
    );
    let discovery = env
        .hub
        .get_json("/.well-known/openid-configuration")
        .await
        .unwrap();
    let jwks_path = discovery["jwks_uri"]
        .as_str()
        .unwrap()
        .trim_start_matches(&env.hub.url())
        .to_owned();
    let jwks: Jwks = serde_json::from_value(env.hub.get_json(&jwks_path).await.unwrap()).unwrap();
    let verifier = Verifier::new(
        KeySet::from_jwks(&jwks),
        VerifyOptions::new(env.hub.url(), format!("tether:cluster:{SPOKE}")),
    );
    let claims = verifier
        .verify(body["access_token"].as_str().unwrap(), SystemClock.now())
        .expect("a valid cluster token");
    assert_eq!(
        claims.sub,
        "serviceaccount:argocd/argocd-application-controller"
    );
    assert_eq!(claims.username, "tether:argocd");
    assert_eq!(claims.groups, vec!["gitops".to_owned()]);
    assert_eq!(claims.sid, None);
    assert_eq!(claims.exp.as_secs() - claims.iat.as_secs(), 60);

    // The same token for a spoke outside the policy, and for an unknown one.
    let answer = env.exchange(&token, DEV_SPOKE).await;
    assert_refused(
        &answer,
        400,
        "invalid_target",
        "no machine policy grants serviceaccount argocd/argocd-application-controller access to cluster spoke-dev",
        &token,
    );
    let answer = env.exchange(&token, "spoke-nowhere").await;
    assert_refused(&answer, 400, "invalid_target", "unknown cluster", &token);

    // Another ServiceAccount's token: valid on the hub cluster, but no policy.
    let server = env.token("argocd-server").await;
    let answer = env.exchange(&server, SPOKE).await;
    assert_refused(
        &answer,
        400,
        "invalid_grant",
        "no machine policy grants serviceaccount argocd/argocd-server",
        &server,
    );

    // A token whose ServiceAccount was deleted (never exchanged before, so not cached).
    let doomed = env.token("doomed").await;
    env.k8s
        .kubectl_ok(&["-n", ARGOCD_NS, "delete", "serviceaccount", "doomed"])
        .await
        .unwrap();
    let answer = env.exchange(&doomed, SPOKE).await;
    assert_refused(
        &answer,
        400,
        "invalid_grant",
        "the hub cluster did not authenticate it (TokenReview",
        &doomed,
    );
    assert!(
        !answer.1.to_string().contains("trusted issuer"),
        "the hub cluster's own issuer is not blamed: {}",
        answer.1
    );

    // An expired token, signed with the hub cluster's real ServiceAccount key (kubectl
    // cannot make tokens shorter than 10 minutes).
    let now = SystemClock.now().as_secs();
    let expired = env.sa_signed_token(&json!({
        "iss": SA_ISSUER,
        "aud": [SA_ISSUER],
        "sub": format!("system:serviceaccount:{ARGOCD_NS}:{CONTROLLER}"),
        "iat": now - 720,
        "nbf": now - 720,
        "exp": now - 120,
    }));
    let answer = env.exchange(&expired, SPOKE).await;
    assert_refused(&answer, 400, "invalid_grant", "it has expired", &expired);

    // A self-signed JWT from an issuer nobody trusts.
    let stranger = SigningKey::generate(Algorithm::Es256).unwrap();
    let forged = stranger
        .sign(&json!({
            "iss": "https://untrusted.example",
            "aud": "tether",
            "sub": format!("system:serviceaccount:{ARGOCD_NS}:{CONTROLLER}"),
            "iat": now,
            "exp": now + 600,
        }))
        .unwrap();
    let answer = env.exchange(&forged, SPOKE).await;
    assert_refused(
        &answer,
        400,
        "invalid_grant",
        "\"https://untrusted.example\" is not a trusted issuer",
        &forged,
    );

    // Every refusal was a decision, counted by outcome.
    let metrics = env.hub.metrics().await.unwrap();
    for series in [
        r#"tether_hub_machine_tokens_total{outcome="success"} 1"#,
        r#"tether_hub_machine_tokens_total{outcome="invalid_target"} 2"#,
        r#"tether_hub_machine_tokens_total{outcome="invalid_grant"} 4"#,
    ] {
        assert!(
            metrics.lines().any(|l| l == series),
            "{series} not in:\n{metrics}"
        );
    }
}
