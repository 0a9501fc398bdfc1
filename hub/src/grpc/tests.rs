//! The gRPC services over a loopback TLS listener (the real TLS and mTLS path).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{CertificateParams, DnType, KeyPair};
use tether_common::time::{Clock, ManualClock, UnixTime};
use tether_common::token::Claims;
use tether_proto::v1::admin_client::AdminClient;
use tether_proto::v1::control_client::ControlClient;
use tether_proto::v1::registration_client::RegistrationClient;
use tether_proto::v1::{
    AddClusterRequest, AddClusterResponse, AgentMessage, HubMessage, JoinRequest,
    ListClustersRequest, RemoveClusterRequest, hub_message,
};
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use super::*;
use crate::admin::{ADMIN_AUDIENCE, ADMIN_GROUP};
use crate::config::Issuer;
use crate::keys::conformance::{manager, test_clock, test_config};
use crate::keys::{Kek, KeyManager};
use crate::store::Store;

const ISSUER: &str = "https://hub.test";

struct Hub {
    state: GrpcState,
    store: Store,
    keys: KeyManager,
    clock: Arc<ManualClock>,
    addr: std::net::SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Hub {
    async fn start() -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let store = crate::store::tests::sqlite_memory().await;
        let (clock, shared) = test_clock();
        // TLS checks certificate validity against the real time.
        clock.set(tether_common::time::SystemClock.now());
        let keys = manager(&store, &test_config(), &shared).await;
        let kek = Kek::from_bytes(&[9u8; 32]).unwrap();
        let issuer = Issuer::parse(ISSUER).unwrap();
        let pki = Pki::load_or_create(
            &store,
            &kek,
            &listener_hosts(&issuer),
            Duration::from_secs(24 * 3600),
            shared.now(),
        )
        .await
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = GrpcState::new(
            store.clone(),
            keys.clone(),
            pki,
            issuer.clone(),
            hub_url(&issuer, addr.port()),
            shared,
        )
        .await;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server::serve(listener, state.clone(), async {
            let _ = stopped.await;
        }));
        Self {
            state,
            store,
            keys,
            clock,
            addr,
            _stop: stop,
        }
    }

    async fn channel(&self, identity: Option<Identity>) -> Channel {
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(self.state.pki().grpc_ca_pem()))
            .domain_name("localhost");
        if let Some(identity) = identity {
            tls = tls.identity(identity);
        }
        Channel::from_shared(format!("https://127.0.0.1:{}", self.addr.port()))
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    fn admin_token(&self) -> String {
        let claims = Claims::mint(
            ISSUER,
            ADMIN_AUDIENCE,
            "admin:alice",
            "alice",
            vec![ADMIN_GROUP.to_owned()],
            None,
            self.clock.now(),
            Duration::from_secs(600),
        );
        self.keys.sign(&claims, "admin").unwrap()
    }

    async fn admin(&self) -> AdminClient<Channel> {
        AdminClient::new(self.channel(None).await)
    }

    fn authed<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {}", self.admin_token()).parse().unwrap(),
        );
        request
    }

    async fn add(&self, name: &str) -> AddClusterResponse {
        self.admin()
            .await
            .add_cluster(self.authed(AddClusterRequest {
                name: name.to_owned(),
                labels: [("env".to_owned(), "test".to_owned())].into(),
                token_ttl_seconds: 0,
            }))
            .await
            .unwrap()
            .into_inner()
    }

    /// The registration rows (clusters, the given tokens) and the audit log, to check that
    /// a refusal wrote nothing.
    async fn snapshot(&self, token_ids: &[&str]) -> String {
        let clusters = self.store.list_cluster_records().await.unwrap();
        let mut tokens = Vec::new();
        for id in token_ids {
            let id = crate::registry::JoinTokenId::parse(id).unwrap();
            tokens.push(self.store.join_token(&id).await.unwrap());
        }
        let audit = self.store.recent_audit(None, 1000).await.unwrap();
        format!("{clusters:?} {tokens:?} {audit:?}")
    }
}

fn csr(cn: &str) -> (KeyPair, String) {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    let pem = params.serialize_request(&key).unwrap().pem().unwrap();
    (key, pem)
}

fn join_request(token: &str, cluster: &str, csr_pem: &str) -> JoinRequest {
    JoinRequest {
        token: token.to_owned(),
        cluster: cluster.to_owned(),
        csr_pem: csr_pem.to_owned(),
        agent_version: "0.1.0".to_owned(),
    }
}

/// Joins `name` (added first); returns the agent's identity.
async fn joined(hub: &Hub, name: &str) -> Identity {
    let added = hub.add(name).await;
    let (key, csr_pem) = csr(name);
    let response = RegistrationClient::new(hub.channel(None).await)
        .join(join_request(&added.join_token, name, &csr_pem))
        .await
        .unwrap()
        .into_inner();
    Identity::from_pem(response.certificate_pem, key.serialize_pem())
}

async fn next(stream: &mut tonic::Streaming<HubMessage>) -> hub_message::Kind {
    tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("a hub message within 5 s")
        .unwrap()
        .unwrap()
        .kind
        .unwrap()
}

async fn connect(
    hub: &Hub,
    identity: Identity,
) -> Result<tonic::Streaming<HubMessage>, tonic::Status> {
    let (tx, rx) = tokio::sync::mpsc::channel::<AgentMessage>(4);
    // Keep the sending half alive for the test's duration.
    std::mem::forget(tx);
    let outbound =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
    ControlClient::new(hub.channel(Some(identity)).await)
        .connect(outbound)
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_cluster_returns_token_pin_url_and_command() {
    let hub = Hub::start().await;
    let added = hub.add("prod-eu").await;
    let (id, secret) = added.join_token.split_once('.').unwrap();
    assert_eq!(id.len(), 16);
    assert!(secret.len() >= 43);
    assert!(added.ca_hash.starts_with("sha256:") && added.ca_hash.len() == 7 + 64);
    assert_eq!(
        added.hub_url,
        format!("https://hub.test:{}", hub.addr.port())
    );
    assert_eq!(
        added.join_command,
        format!(
            "tether-agent join --hub {} --token {} --ca-hash {} --cluster prod-eu",
            added.hub_url, added.join_token, added.ca_hash
        )
    );
    // Only the hash of the secret is stored.
    let stored = hub
        .store
        .join_token(&crate::registry::JoinTokenId::parse(id).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_ne!(stored.secret_hash, secret);
    assert_eq!(stored.secret_hash.len(), 64);
    // Adding it again is refused.
    let err = hub
        .admin()
        .await
        .add_cluster(hub.authed(AddClusterRequest {
            name: "prod-eu".to_owned(),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_calls_need_a_valid_admin_token() {
    let hub = Hub::start().await;
    let mut admin = hub.admin().await;
    let err = admin
        .list_clusters(ListClustersRequest {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    let mut bad = tonic::Request::new(ListClustersRequest {});
    bad.metadata_mut()
        .insert("authorization", "Bearer not-a-token".parse().unwrap());
    assert_eq!(
        admin.list_clusters(bad).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    // A hub-signed token for another audience is not an admin token.
    let claims = Claims::mint(
        ISSUER,
        "tether:cluster:x",
        "u",
        "u",
        vec![ADMIN_GROUP.to_owned()],
        None,
        hub.clock.now(),
        Duration::from_secs(60),
    );
    let mut other = tonic::Request::new(ListClustersRequest {});
    other.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", hub.keys.sign(&claims, "test").unwrap())
            .parse()
            .unwrap(),
    );
    assert_eq!(
        admin.list_clusters(other).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    let ok = admin
        .list_clusters(hub.authed(ListClustersRequest {}))
        .await
        .unwrap();
    assert!(ok.into_inner().clusters.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_refusals_write_nothing() {
    let hub = Hub::start().await;
    let added = hub.add("prod-eu").await;
    hub.add("dev").await;
    let token = added.join_token.clone();
    let (id, _) = token.split_once('.').unwrap();
    let (_, good_csr) = csr("prod-eu");
    let (_, wrong_cn) = csr("dev");
    let ids = [id];
    let before = hub.snapshot(&ids).await;
    let mut client = RegistrationClient::new(hub.channel(None).await);
    let cases = [
        (
            "malformed token",
            join_request("nope", "prod-eu", &good_csr),
            Code::InvalidArgument,
        ),
        (
            "wrong secret",
            join_request(
                &format!("{id}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
                "prod-eu",
                &good_csr,
            ),
            Code::PermissionDenied,
        ),
        (
            "unknown id",
            join_request("0123456789abcdef.secret", "prod-eu", &good_csr),
            Code::PermissionDenied,
        ),
        (
            "other cluster",
            join_request(&token, "dev", &wrong_cn),
            Code::PermissionDenied,
        ),
        (
            "CN mismatch",
            join_request(&token, "prod-eu", &wrong_cn),
            Code::InvalidArgument,
        ),
        (
            "garbage CSR",
            join_request(
                &token,
                "prod-eu",
                "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
            ),
            Code::InvalidArgument,
        ),
    ];
    for (what, request, code) in cases {
        let err = client.join(request).await.unwrap_err();
        assert_eq!(err.code(), code, "{what}: {err:?}");
        assert!(!err.message().is_empty());
        assert_eq!(hub.snapshot(&ids).await, before, "{what} wrote something");
    }
    // Expired.
    hub.clock.advance(Duration::from_secs(3601));
    let err = client
        .join(join_request(&token, "prod-eu", &good_csr))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("expired"));
    assert_eq!(hub.snapshot(&ids).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_signs_the_csr_once() {
    let hub = Hub::start().await;
    let added = hub.add("prod-eu").await;
    let (_, csr_pem) = csr("prod-eu");
    let mut client = RegistrationClient::new(hub.channel(None).await);
    let response = client
        .join(join_request(&added.join_token, "prod-eu", &csr_pem))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.audience, "tether:cluster:prod-eu");
    assert_eq!(response.issuer, ISSUER);
    assert_eq!(response.hub_ca_pem, hub.state.pki().grpc_ca_pem());
    assert_eq!(
        pki::ca_hash_of_pem(&response.hub_ca_pem).unwrap(),
        added.ca_hash
    );
    // The certificate chains to the cluster CA and names the cluster.
    use x509_parser::prelude::FromDer as _;
    let der = |pem: &str| {
        use rustls_pki_types::pem::PemObject as _;
        rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
    };
    let leaf_der = der(&response.certificate_pem);
    let ca_der = der(&response.cluster_ca_pem);
    let (_, leaf) = x509_parser::certificate::X509Certificate::from_der(&leaf_der).unwrap();
    let (_, ca) = x509_parser::certificate::X509Certificate::from_der(&ca_der).unwrap();
    leaf.verify_signature(Some(ca.public_key())).unwrap();
    let (name, serial) = pki::peer_identity(&leaf_der).unwrap();
    assert_eq!(name.as_str(), "prod-eu");
    let record = hub.store.cluster_record(&name).await.unwrap().unwrap();
    assert_eq!(record.state, crate::registry::ClusterState::Joined);
    assert_eq!(record.cert_serial.as_deref(), Some(serial.as_str()));
    assert_eq!(record.agent_version, "0.1.0");
    // Single use; and the cluster is joined.
    let ids = [added.join_token.split_once('.').unwrap().0];
    let before = hub.snapshot(&ids).await;
    let err = client
        .join(join_request(&added.join_token, "prod-eu", &csr_pem))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert_eq!(hub.snapshot(&ids).await, before);
    assert_eq!(
        hub.store
            .recent_audit(Some("cluster.joined"), 5)
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_stream_pushes_config_keys_and_closes_on_removal() {
    let hub = Hub::start().await;
    let identity = joined(&hub, "prod-eu").await;
    let mut stream = connect(&hub, identity.clone()).await.unwrap();
    let hub_message::Kind::Config(config) = next(&mut stream).await else {
        panic!("config first")
    };
    assert_eq!(config.audience, "tether:cluster:prod-eu");
    assert_eq!(config.issuer, ISSUER);
    let hub_message::Kind::Jwks(first) = next(&mut stream).await else {
        panic!("jwks second")
    };
    assert_eq!(first.generation, hub.keys.current().generation);
    let hub_message::Kind::Revocations(revocations) = next(&mut stream).await else {
        panic!("revocations third")
    };
    assert!(revocations.full);

    // Connected, as ListClusters shows.
    let list = hub
        .admin()
        .await
        .list_clusters(hub.authed(ListClustersRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert!(list.clusters[0].connected);
    assert_eq!(list.clusters[0].state, "joined");

    // An emergency rotation reaches the agent within 2 s.
    let started = std::time::Instant::now();
    hub.keys
        .rotate_emergency(hub.clock.now(), "test")
        .await
        .unwrap();
    let jwks = loop {
        if let hub_message::Kind::Jwks(jwks) = next(&mut stream).await {
            break jwks;
        }
    };
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(jwks.generation > first.generation);
    assert_ne!(jwks.jwks_json, first.jwks_json);

    // Removal closes the stream at once, and reconnecting is refused.
    hub.admin()
        .await
        .remove_cluster(hub.authed(RemoveClusterRequest {
            name: "prod-eu".to_owned(),
        }))
        .await
        .unwrap();
    let ended = loop {
        match tokio::time::timeout(Duration::from_secs(2), stream.message())
            .await
            .unwrap()
        {
            Ok(Some(_)) => {}
            Ok(None) => break None,
            Err(status) => break Some(status),
        }
    };
    assert_eq!(ended.map(|s| s.code()), Some(Code::PermissionDenied));
    let err = connect(&hub, identity).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    let list = hub
        .admin()
        .await
        .list_clusters(hub.authed(ListClustersRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.clusters[0].state, "removed");
    assert!(!list.clusters[0].connected);
    // Removed clusters get no cluster tokens.
    assert!(
        hub.store
            .cluster(&"prod-eu".parse().unwrap())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_stream_needs_a_client_certificate() {
    let hub = Hub::start().await;
    let (tx, rx) = tokio::sync::mpsc::channel::<AgentMessage>(1);
    drop(tx);
    let outbound =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
    let err = ControlClient::new(hub.channel(None).await)
        .connect(outbound)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    let _ = BTreeMap::<String, String>::new();
    let _ = UnixTime::EPOCH;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_session_reaches_every_connected_agent() {
    use crate::sessions::{SessionIdentity, Sessions, SessionsConfig};

    let hub = Hub::start().await;
    let mut streams = Vec::new();
    for name in ["spoke-a", "spoke-b"] {
        let identity = joined(&hub, name).await;
        let mut stream = connect(&hub, identity).await.unwrap();
        // config, jwks, full revocations (empty)
        for _ in 0..3 {
            next(&mut stream).await;
        }
        streams.push(stream);
    }
    let sessions = Sessions::new(
        hub.store.clone(),
        Kek::from_bytes(&[7u8; 32]).unwrap(),
        SessionsConfig::default(),
    );
    let identity = SessionIdentity {
        subject: "00ualice".into(),
        username: "alice@example.com".into(),
        groups: vec!["k8s-admins".into()],
    };
    let now = hub.clock.now();
    let session = sessions
        .create(&identity, b"{}", "tetherctl", now)
        .await
        .unwrap();
    sessions.revoke(&session.id, "logout", now).await.unwrap();

    // One feed reads the store; both agents get the increment within a few poll periods.
    for stream in &mut streams {
        let revoked = loop {
            if let hub_message::Kind::Revocations(r) = next(stream).await {
                break r;
            }
        };
        assert!(!revoked.full);
        assert_eq!(revoked.sessions.len(), 1);
        assert_eq!(revoked.sessions[0].sid, session.id.as_str());
    }
}

/// `ArgoCdSecret`: the reconciler's rendering, refused clearly when it cannot apply; joins
/// and heartbeats that change the proxy poke the reconciler.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argocd_secret_renders_for_joined_clusters_and_pokes_on_changes() {
    use tether_proto::v1::{ArgoCdSecretRequest, Heartbeat, agent_message};

    use crate::argocd::{self, RenderSettings};

    let hub = Hub::start().await;
    let link = Arc::clone(hub.state.argocd());
    let poked = || async {
        tokio::time::timeout(Duration::from_secs(5), link.changed())
            .await
            .is_ok()
    };
    let hub = &hub;
    let secret_of = |name: &str| {
        let request = hub.authed(ArgoCdSecretRequest {
            name: name.to_owned(),
        });
        async move { hub.admin().await.argo_cd_secret(request).await }
    };

    hub.add("prod-eu").await;
    assert!(poked().await, "AddCluster pokes");
    // Not configured on this hub.
    let err = secret_of("prod-eu").await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("argocd"), "{err:?}");
    let settings = Arc::new(RenderSettings {
        namespace: "argocd".to_owned(),
        command: "/custom-tools/tetherctl".to_owned(),
        token_file: "/var/run/secrets/kubernetes.io/serviceaccount/token".to_owned(),
        hub_url: ISSUER.to_owned(),
        hub_ca_pem: None,
    });
    assert!(link.configure(Arc::clone(&settings)));
    // Unknown, malformed, and not joined yet.
    let err = secret_of("nope").await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let err = secret_of("Not_A_Name").await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let err = secret_of("prod-eu").await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("pending"), "{err:?}");
    // Without a token: refused before anything is read.
    let err = hub
        .admin()
        .await
        .argo_cd_secret(ArgoCdSecretRequest {
            name: "prod-eu".to_owned(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);

    // Joined: a join pokes; no proxy URL reported yet.
    let added = hub.add("eu-two").await;
    assert!(poked().await);
    let (key, csr_pem) = csr("eu-two");
    let joined = RegistrationClient::new(hub.channel(None).await)
        .join(join_request(&added.join_token, "eu-two", &csr_pem))
        .await
        .unwrap()
        .into_inner();
    let identity = Identity::from_pem(joined.certificate_pem, key.serialize_pem());
    assert!(poked().await, "Join pokes");
    let err = secret_of("eu-two").await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("proxy URL"), "{err:?}");

    // A heartbeat with a proxy URL pokes once; the same heartbeat again does not.
    let (tx, rx) = tokio::sync::mpsc::channel::<AgentMessage>(4);
    let outbound =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
    let _stream = ControlClient::new(hub.channel(Some(identity)).await)
        .connect(outbound)
        .await
        .unwrap();
    while tokio::time::timeout(Duration::from_millis(50), link.changed())
        .await
        .is_ok()
    {}
    let beat = AgentMessage {
        kind: Some(agent_message::Kind::Heartbeat(Heartbeat {
            agent_version: "0.1.0".to_owned(),
            health: "ok".to_owned(),
            proxy_url: "https://eu-two.example.com:8443".to_owned(),
            proxy_ca_pem: "-----BEGIN CERTIFICATE-----\nX\n-----END CERTIFICATE-----\n".to_owned(),
            jwks_generation: 1,
        })),
    };
    tx.send(beat.clone()).await.unwrap();
    assert!(poked().await, "a new proxy URL pokes");
    tx.send(beat).await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(500), link.changed())
            .await
            .is_err(),
        "an unchanged heartbeat must not poke"
    );

    let response = secret_of("eu-two").await.unwrap().into_inner();
    let record = hub
        .store
        .cluster_record(&"eu-two".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    let rendered = argocd::render(&record, &settings).unwrap();
    assert_eq!(response.secret_name, "tether-cluster-eu-two");
    assert_eq!(response.namespace, "argocd");
    assert_eq!(
        response.yaml,
        argocd::secret::to_yaml(&rendered.secret).unwrap()
    );
    assert_eq!(
        response.json,
        argocd::secret::to_json(&rendered.secret).unwrap()
    );
    assert!(response.skipped_labels.is_empty());
    let json: serde_json::Value = serde_json::from_str(&response.json).unwrap();
    assert_eq!(
        json["metadata"]["labels"]["argocd.argoproj.io/secret-type"],
        "cluster"
    );
    assert_eq!(json["metadata"]["labels"]["env"], "test");
    let shown = hub
        .store
        .recent_audit(Some(argocd::audit_kind::SECRET_SHOWN), 10)
        .await
        .unwrap();
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0].record.actor, "admin:alice");
    assert_eq!(shown[0].record.subject.as_deref(), Some("eu-two"));

    // Removal pokes.
    while tokio::time::timeout(Duration::from_millis(50), link.changed())
        .await
        .is_ok()
    {}
    hub.admin()
        .await
        .remove_cluster(hub.authed(RemoveClusterRequest {
            name: "eu-two".to_owned(),
        }))
        .await
        .unwrap();
    assert!(poked().await, "RemoveCluster pokes");
    let err = secret_of("eu-two").await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
}
