use super::*;

fn build() -> Manifests {
    let opts = InstallOptions {
        namespace: "tether-system".to_owned(),
        image: "example/agent:1".to_owned(),
    };
    let mut id = Identity::placeholder("prod-eu", "https://hub.example:8443");
    id.key_pem = "KEY".to_owned();
    Manifests::build(&opts, &id)
}

#[test]
fn exactly_the_agent_objects_in_apply_order() {
    let m = build();
    let names = m.names();
    let names: Vec<(&str, &str)> = names.iter().map(|(k, n)| (*k, n.as_str())).collect();
    assert_eq!(
        names,
        vec![
            ("Namespace", "tether-system"),
            ("ServiceAccount", "tether-agent"),
            ("ClusterRole", "tether-agent-impersonate"),
            ("ClusterRoleBinding", "tether-agent-impersonate"),
            ("Role", "tether-agent-identity"),
            ("RoleBinding", "tether-agent-identity"),
            ("Secret", "tether-agent-identity"),
            ("Deployment", "tether-agent"),
            ("Service", "tether-agent"),
        ]
    );
    for ns in [
        &m.service_account.metadata.namespace,
        &m.role.metadata.namespace,
        &m.secret.metadata.namespace,
        &m.deployment.metadata.namespace,
        &m.service.metadata.namespace,
    ] {
        assert_eq!(ns.as_deref(), Some("tether-system"));
    }
}

#[test]
fn cluster_role_allows_impersonation_and_access_reviews_only() {
    let m = build();
    let rules = m.cluster_role.rules.clone().unwrap();
    assert_eq!(rules.len(), 2);
    assert_eq!(rules[0].verbs, vec!["impersonate"]);
    assert_eq!(
        rules[0].resources.clone().unwrap(),
        vec![
            "users",
            "groups",
            "uids",
            "serviceaccounts",
            "userextras/tether.dev/sid",
            "userextras/tether.dev/issuer",
            "userextras/tether.dev/impersonated-by"
        ]
    );
    assert_eq!(
        rules[0].api_groups.clone().unwrap(),
        vec!["", "authentication.k8s.io"]
    );
    assert_eq!(rules[1].verbs, vec!["create"]);
    assert_eq!(
        rules[1].resources.clone().unwrap(),
        vec!["subjectaccessreviews"]
    );
    assert_eq!(
        rules[1].api_groups.clone().unwrap(),
        vec!["authorization.k8s.io"]
    );
    let subject = &m.cluster_role_binding.subjects.as_ref().unwrap()[0];
    assert_eq!(
        (subject.kind.as_str(), subject.name.as_str()),
        ("ServiceAccount", "tether-agent")
    );
    assert_eq!(subject.namespace.as_deref(), Some("tether-system"));
    assert_eq!(m.cluster_role_binding.role_ref.name, IMPERSONATE_ROLE);
    // The namespaced Role reaches only the identity Secret.
    let role_rule = &m.role.rules.as_ref().unwrap()[0];
    assert_eq!(role_rule.resource_names.clone().unwrap(), vec![SECRET_NAME]);
}

#[test]
fn secret_deployment_and_service() {
    let m = build();
    let data = m.secret.data.as_ref().unwrap();
    let keys: Vec<&str> = data.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        vec![
            "audience",
            "ca.crt",
            "cluster",
            "hub-ca.crt",
            "hub-url",
            "issuer",
            "tls.crt",
            "tls.key"
        ]
    );
    assert_eq!(data["hub-url"].0, b"https://hub.example:8443");
    assert_eq!(data["cluster"].0, b"prod-eu");

    let pod = m
        .deployment
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some("tether-agent"));
    let c = &pod.containers[0];
    assert_eq!(c.image.as_deref(), Some("example/agent:1"));
    assert_eq!(c.args.as_ref().unwrap()[0], "run");
    let volumes = pod.volumes.as_ref().unwrap();
    assert_eq!(
        volumes[0].secret.as_ref().unwrap().secret_name.as_deref(),
        Some(SECRET_NAME)
    );
    let svc = m.service.spec.as_ref().unwrap();
    let port = &svc.ports.as_ref().unwrap()[0];
    assert_eq!(port.port, 443);
    assert_eq!(c.ports.as_ref().unwrap()[0].container_port, 8443);
    assert_eq!(
        port.target_port,
        Some(IntOrString::String("https".to_owned()))
    );
}

#[test]
fn yaml_is_one_document_per_object() {
    let yaml = build().to_yaml().unwrap();
    assert_eq!(yaml.matches("---\n").count(), 9);
    for kind in [
        "kind: Namespace",
        "kind: ServiceAccount",
        "kind: ClusterRole\n",
        "kind: ClusterRoleBinding",
        "kind: Role\n",
        "kind: RoleBinding",
        "kind: Secret",
        "kind: Deployment",
        "kind: Service\n",
        "apiVersion: apps/v1",
        "apiVersion: rbac.authorization.k8s.io/v1",
    ] {
        assert!(yaml.contains(kind), "{kind} missing in\n{yaml}");
    }
}
