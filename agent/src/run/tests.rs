use std::sync::Mutex;

use tether_common::time::ManualClock;
use tether_common::token::{Algorithm, SigningKey};
use tether_proto::v1::control_server::{Control, ControlServer};
use tether_proto::v1::{
    AgentConfig, AgentMessage, HubMessage, Jwks as JwksMsg, RenewResponse, RevokedSession,
    agent_message, hub_message,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::jwks_store::StateDir;
use super::*;
use crate::identity::{Identity, IdentityStore};
use crate::test_support::{ca, leaf};

/// 2090-01-01: the agent's (manual) clock, far past 2/3 of its 2020..2100 certificate.
const T2090: i64 = 3_786_912_000;

#[test]
fn revocation_list_full_incremental_and_expiry() {
    let now = UnixTime::from_secs(1_000);
    let mut list = RevocationList::default();
    let rs = |sid: &str, until| RevokedSession {
        sid: sid.to_owned(),
        until,
    };
    list.apply(
        &Revocations {
            sessions: vec![rs("a", 2_000), rs("old", 10)],
            full: true,
        },
        now,
    );
    assert_eq!(list.sids(), vec!["a"]);
    list.apply(
        &Revocations {
            sessions: vec![rs("b", 1_500)],
            full: false,
        },
        now,
    );
    assert_eq!(list.sids(), vec!["a", "b"]);
    assert!(list.is_revoked("b", now));
    assert!(!list.is_revoked("b", UnixTime::from_secs(1_501)));
    assert!(!list.is_revoked("c", now));
    list.apply(
        &Revocations {
            sessions: vec![rs("c", 3_000)],
            full: true,
        },
        now,
    );
    assert_eq!(list.sids(), vec!["c"]);
    list.prune(UnixTime::from_secs(3_001));
    assert!(list.sids().is_empty());
}

#[test]
fn renews_at_two_thirds() {
    assert_eq!(control::renew_at(0, 300), 200);
    assert_eq!(control::renew_at(1_000, 1_090), 1_060);
    assert_eq!(control::renew_at(10, 5), 10);
}

type HubSender = mpsc::Sender<Result<HubMessage, Status>>;

/// A fake hub Control service: sends config, JWKS and revocations on connect, signs renewal
/// CSRs with the cluster CA, and lets the test push more.
struct FakeHub {
    cluster_ca: Arc<rcgen::CertifiedIssuer<'static, rcgen::KeyPair>>,
    push: Arc<Mutex<Option<HubSender>>>,
    heartbeats: Arc<std::sync::atomic::AtomicUsize>,
    first_jwks: Vec<u8>,
    kill: tokio::sync::watch::Receiver<bool>,
}

fn msg(kind: hub_message::Kind) -> Result<HubMessage, Status> {
    Ok(HubMessage { kind: Some(kind) })
}

#[tonic::async_trait]
impl Control for FakeHub {
    type ConnectStream = ReceiverStream<Result<HubMessage, Status>>;

    async fn connect(
        &self,
        request: Request<Streaming<AgentMessage>>,
    ) -> Result<Response<Self::ConnectStream>, Status> {
        assert!(request.peer_certs().is_some_and(|c| !c.is_empty()), "mTLS");
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(16);
        tx.send(msg(hub_message::Kind::Config(AgentConfig {
            issuer: "https://hub.test".to_owned(),
            audience: "tether:cluster:prod".to_owned(),
            leeway_seconds: 5,
        })))
        .await
        .unwrap();
        tx.send(msg(hub_message::Kind::Jwks(JwksMsg {
            generation: 1,
            jwks_json: self.first_jwks.clone(),
        })))
        .await
        .unwrap();
        tx.send(msg(hub_message::Kind::Revocations(Revocations {
            sessions: vec![RevokedSession {
                sid: "sid-1".to_owned(),
                until: T2090 + 3_600,
            }],
            full: true,
        })))
        .await
        .unwrap();
        *self.push.lock().unwrap() = Some(tx.clone());
        let ca = self.cluster_ca.clone();
        let heartbeats = self.heartbeats.clone();
        let mut kill = self.kill.clone();
        tokio::spawn(async move {
            loop {
                let m = tokio::select! {
                    m = inbound.message() => match m {
                        Ok(Some(m)) => m,
                        _ => break,
                    },
                    _ = kill.changed() => break,
                };
                match m.kind {
                    Some(agent_message::Kind::Heartbeat(_)) => {
                        heartbeats.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    Some(agent_message::Kind::Renew(r)) => {
                        let csr =
                            rcgen::CertificateSigningRequestParams::from_pem(&r.csr_pem).unwrap();
                        let cert = csr.signed_by(&ca).unwrap();
                        let _ = tx
                            .send(msg(hub_message::Kind::Renewed(RenewResponse {
                                certificate_pem: cert.pem(),
                                not_after: T2090,
                            })))
                            .await;
                    }
                    None => {}
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

async fn wait_for(
    status: &mut tokio::sync::watch::Receiver<jwks_store::Status>,
    what: &str,
    pred: impl Fn(&jwks_store::Status) -> bool,
) {
    tokio::time::timeout(Duration::from_secs(15), status.wait_for(|s| pred(s)))
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_loop_against_a_fake_hub() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let hub_ca = ca("hub grpc CA");
    let cluster_ca = Arc::new(ca("cluster CA"));
    let (server_cert, server_key) = leaf(&hub_ca, &["127.0.0.1"], false);

    // The agent's first certificate: 2020..2100, so at 2090 it is due for renewal.
    let agent_key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "prod");
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2100, 1, 1);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let agent_cert = params.signed_by(&agent_key, &*cluster_ca).unwrap();

    let key1 = SigningKey::generate(Algorithm::Es256).unwrap();
    let key2 = SigningKey::generate(Algorithm::Es256).unwrap();
    let jwks1: tether_common::token::Jwks = std::iter::once(key1.public_jwk()).collect();
    let jwks2: tether_common::token::Jwks =
        [key1.public_jwk(), key2.public_jwk()].into_iter().collect();

    let push = Arc::new(Mutex::new(None));
    let (kill_tx, kill_rx) = tokio::sync::watch::channel(false);
    let heartbeats = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let fake = FakeHub {
        cluster_ca: cluster_ca.clone(),
        push: push.clone(),
        heartbeats: heartbeats.clone(),
        first_jwks: serde_json::to_vec(&jwks1).unwrap(),
        kill: kill_rx,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let tls = tonic::transport::ServerTlsConfig::new()
        .identity(tonic::transport::Identity::from_pem(
            &server_cert,
            &server_key,
        ))
        .client_ca_root(tonic::transport::Certificate::from_pem(cluster_ca.pem()));
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .tls_config(tls)
            .unwrap()
            .add_service(ControlServer::new(fake))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );

    let dir = tempfile::tempdir().unwrap();
    let id_dir = dir.path().join("identity");
    std::fs::create_dir_all(&id_dir).unwrap();
    let identity = Identity {
        cert_pem: agent_cert.pem(),
        key_pem: agent_key.serialize_pem(),
        cluster_ca_pem: cluster_ca.pem(),
        hub_ca_pem: hub_ca.pem(),
        hub_url: format!("https://127.0.0.1:{port}"),
        cluster: "prod".to_owned(),
        issuer: String::new(),
        audience: String::new(),
    };
    let store = IdentityStore::Dir(id_dir.clone());
    store.save(&identity).await.unwrap();
    let state = StateDir::open(dir.path().join("state")).unwrap();
    let clock = Arc::new(ManualClock::new(UnixTime::from_secs(T2090)));
    let (agent, mut published) = Agent::new(store, state.clone(), clock).await.unwrap();
    let agent = agent.with_heartbeat(Duration::from_millis(200));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(agent.run(async {
        let _ = stop_rx.await;
    }));

    wait_for(&mut published.status, "first JWKS", |s| {
        s.connected && s.jwks_generation == 1
    })
    .await;
    wait_for(&mut published.status, "revocations", |s| {
        s.revoked_sids == ["sid-1"]
    })
    .await;
    let verifier = published.verifier.borrow().clone().expect("a verifier");
    assert_eq!(verifier.keys().len(), 1);
    assert_eq!(verifier.options().issuer, "https://hub.test");
    assert_eq!(verifier.options().leeway, Duration::from_secs(5));
    assert!(
        published
            .revocations
            .borrow()
            .is_revoked("sid-1", UnixTime::from_secs(T2090))
    );

    // A rotation pushed by the hub arrives, is published, stored, and shown in status.json.
    let tx = push.lock().unwrap().clone().unwrap();
    tx.send(msg(hub_message::Kind::Jwks(JwksMsg {
        generation: 2,
        jwks_json: serde_json::to_vec(&jwks2).unwrap(),
    })))
    .await
    .unwrap();
    wait_for(&mut published.status, "rotation", |s| {
        s.jwks_generation == 2
    })
    .await;
    assert_eq!(
        published.verifier.borrow().as_ref().unwrap().keys().len(),
        2
    );
    let stored = state.load_jwks().unwrap().unwrap();
    assert_eq!((stored.generation, stored.jwks.keys.len()), (2, 2));
    assert_eq!(stored.audience, "tether:cluster:prod");
    let on_disk = state.load_status().unwrap();
    assert!(on_disk.connected);
    assert_eq!(on_disk.jwks_generation, 2);
    let mut kids = vec![
        key1.kid().as_str().to_owned(),
        key2.kid().as_str().to_owned(),
    ];
    kids.sort();
    assert_eq!(on_disk.kids, kids);

    // The certificate was due: a new key and certificate are persisted.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let now_cert = std::fs::read_to_string(id_dir.join("tls.crt")).unwrap();
        if now_cert != identity.cert_pem {
            let now_key = std::fs::read_to_string(id_dir.join("tls.key")).unwrap();
            assert_ne!(now_key, identity.key_pem);
            crate::tls::mtls_config(&identity.hub_ca_pem, &now_cert, &now_key).unwrap();
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no renewal");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Heartbeats flow.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(heartbeats.load(std::sync::atomic::Ordering::SeqCst) >= 2);

    // The hub goes away: the agent reports it, and keeps its keys.
    // (Ending the response stream ends the call; aborting the server would leave the
    // connection task running.)
    kill_tx.send_replace(true);
    server.abort();
    drop(tx);
    *push.lock().unwrap() = None;
    wait_for(&mut published.status, "disconnect", |s| !s.connected).await;
    assert!(published.verifier.borrow().is_some());
    assert!(!state.load_status().unwrap().connected);

    // A restarted agent verifies with the stored JWKS before it reaches the hub.
    let (_agent2, published2) = Agent::new(
        IdentityStore::Dir(id_dir.clone()),
        state.clone(),
        Arc::new(ManualClock::new(UnixTime::from_secs(T2090))),
    )
    .await
    .unwrap();
    let v2 = published2
        .verifier
        .borrow()
        .clone()
        .expect("verifier from jwks.json");
    assert_eq!(v2.keys().len(), 2);
    assert_eq!(published2.status.borrow().jwks_generation, 2);

    let _ = stop_tx.send(());
    running.await.unwrap();
}
