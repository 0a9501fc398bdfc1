//! IdP + hub (login) + a spoke with a test node joined through the operator path, and its
//! agent running the proxy; users get cluster tokens by token exchange.

use std::path::PathBuf;
use std::time::Duration;

use tether_e2e::{Agent, Cluster, ClusterOptions, CmdOutput, Etcd, agent, free_port};

use crate::login::env::LoginEnv;

/// The spoke's name (the ArgoCD client of `LoginEnv` may exchange for `spoke-*`).
pub const SPOKE: &str = "spoke-p";

/// RBAC on the spoke: `k8s-admins` are cluster-admin; `k8s-viewers` may view the `default`
/// namespace (a RoleBinding: they cannot list namespaces).
const RBAC: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: e2e-k8s-admins}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: Group, name: k8s-admins}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: e2e-k8s-viewers, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: Group, name: k8s-viewers}]
"#;

pub struct ProxyEnv {
    pub login: LoginEnv,
    pub spoke: Cluster,
    pub agent: Agent,
    pub proxy_url: String,
    _etcd: Etcd,
}

impl ProxyEnv {
    pub async fn start(name: &str) -> Self {
        Self::start_with(LoginEnv::start(name, "5m", "").await).await
    }

    /// A spoke behind a hub whose cluster tokens live `lifetime`, verified with `skew`.
    pub async fn start_with_tokens(name: &str, lifetime: &str, skew: &str) -> Self {
        Self::start_with(LoginEnv::start_with_tokens(name, "5m", "", lifetime, skew).await).await
    }

    pub async fn start_with(login: LoginEnv) -> Self {
        let dir = login.dir().clone();
        let etcd = Etcd::start(&dir).await.expect("etcd");
        let spoke = Cluster::start(
            &dir,
            ClusterOptions::new(SPOKE).etcd(&etcd).with_test_node(),
        )
        .await
        .expect("spoke");
        spoke.apply_yaml(RBAC).await.expect("rbac");
        let admin = login.hub.admin_token().await.expect("admin token");
        let words = agent::add_cluster(&login.hub, &admin, SPOKE, &[])
            .await
            .expect("cluster add");
        let joined = agent::join(&words, &spoke).await.expect("join");
        assert!(joined.success(), "join: {}", joined.stderr);
        let port = free_port().expect("port");
        let mut agent = Agent::start_with_proxy(&dir, &spoke, port)
            .await
            .expect("agent");
        agent
            .wait_connected(true, Duration::from_secs(30))
            .await
            .expect("agent connected");
        Self {
            login,
            spoke,
            agent,
            proxy_url: format!("https://127.0.0.1:{port}"),
            _etcd: etcd,
        }
    }

    /// A cluster token for `user` (login at the IdP through the hub, then token exchange).
    pub async fn token_for(&self, user: &str, password: &str) -> String {
        self.token_for_cluster(user, password, SPOKE).await
    }

    pub async fn token_for_cluster(&self, user: &str, password: &str, cluster: &str) -> String {
        let tokens = self.login.login(user, password).await;
        let access = tokens["access_token"].as_str().expect("access token");
        let (status, body) = self.login.exchange(access, cluster).await;
        assert_eq!(status, 200, "exchange: {body}");
        body["access_token"]
            .as_str()
            .expect("cluster token")
            .to_owned()
    }

    /// A kubeconfig for the proxy with `token`; returns its path.
    pub fn kubeconfig(&self, name: &str, token: &str) -> PathBuf {
        let path = self.login.dir().path().join(format!("{name}.kubeconfig"));
        let yaml = format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: p, cluster: {{server: \"{}\", certificate-authority: \"{}\"}}}}]\nusers: [{{name: u, user: {{token: \"{token}\"}}}}]\ncontexts: [{{name: c, context: {{cluster: p, user: u, namespace: default}}}}]\ncurrent-context: c\n",
            self.proxy_url,
            self.agent.proxy_ca_file().display(),
        );
        std::fs::write(&path, yaml).expect("write kubeconfig");
        path
    }

    /// kubectl through the proxy with the kubeconfig `kc`.
    pub async fn kubectl(
        &self,
        kc: &std::path::Path,
        args: &[&str],
        env: &[(&str, &str)],
        stdin: Option<&str>,
    ) -> CmdOutput {
        tether_e2e::cluster::run_kubectl(kc, self.login.dir().path(), args, env, stdin)
            .await
            .expect("run kubectl")
    }
}
