//! Test fixtures: PKI made with rcgen at test time, and a fake `Admin` gRPC server on a
//! loopback port that records what it receives.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, PublicKeyData,
};
use tether_proto::v1::admin_server::{Admin, AdminServer};
use tether_proto::v1::{
    AddClusterRequest, AddClusterResponse, ArgoCdSecretRequest, ArgoCdSecretResponse, ClusterInfo,
    ListClustersRequest, ListClustersResponse, RemoveClusterRequest, RemoveClusterResponse,
};
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic::{Request, Response, Status};

/// The admin token the fake hub accepts.
pub const GOOD_TOKEN: &str = "good.admin-token";
/// The join command the fake hub returns.
pub const JOIN_COMMAND: &str =
    "tether-agent join --hub https://hub.test:8443 --ca-hash sha256:ab --token id.secret";

/// The YAML the fake hub returns for `ArgoCdSecret alpha`.
pub const ARGOCD_YAML: &str =
    "apiVersion: v1\nkind: Secret\nmetadata:\n  name: tether-cluster-alpha\n";
/// The JSON the fake hub returns for `ArgoCdSecret alpha`.
pub const ARGOCD_JSON: &str = "{\"kind\": \"Secret\"}\n";

/// A CA and a serving certificate for `localhost` and `127.0.0.1` it issued.
#[derive(Debug)]
pub struct Pki {
    /// CA certificate, PEM.
    pub ca_pem: String,
    /// CA public key (SubjectPublicKeyInfo DER).
    pub ca_spki: Vec<u8>,
    /// Serving certificate followed by the CA, PEM: what the hub presents.
    pub chain_pem: String,
    /// Serving key, PKCS#8 PEM.
    pub key_pem: String,
}

impl Pki {
    /// A fresh CA and serving certificate.
    pub fn new() -> Self {
        let ca_key = KeyPair::generate().unwrap();
        let ca_spki = ca_key.subject_public_key_info();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "test hub CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(params, ca_key).unwrap();

        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, "hub");
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let leaf = params.signed_by(&key, &ca).unwrap();

        Self {
            ca_pem: ca.pem(),
            ca_spki,
            chain_pem: format!("{}{}", leaf.pem(), ca.pem()),
            key_pem: key.serialize_pem(),
        }
    }
}

/// One call the fake hub received.
#[derive(Clone, Debug, PartialEq)]
pub struct Seen {
    /// The rpc.
    pub method: &'static str,
    /// The `authorization` metadata, if any.
    pub authorization: Option<String>,
    /// The `grpc-timeout` metadata, if any.
    pub grpc_timeout: Option<String>,
}

/// A fake `Admin` service: accepts [`GOOD_TOKEN`], knows one cluster `alpha`.
#[derive(Clone, Debug, Default)]
pub struct FakeAdmin {
    /// Calls received, in order.
    pub seen: Arc<Mutex<Vec<Seen>>>,
    /// `AddCluster` requests received.
    pub added: Arc<Mutex<Vec<AddClusterRequest>>>,
}

impl FakeAdmin {
    fn check<T>(&self, method: &'static str, request: &Request<T>) -> Result<(), Status> {
        let header = |name: &str| {
            request
                .metadata()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let authorization = header("authorization");
        self.seen.lock().unwrap().push(Seen {
            method,
            authorization: authorization.clone(),
            grpc_timeout: header("grpc-timeout"),
        });
        if authorization.as_deref() == Some(&format!("Bearer {GOOD_TOKEN}")) {
            Ok(())
        } else {
            Err(Status::unauthenticated("bad admin token"))
        }
    }

    /// The cluster the fake knows.
    pub fn alpha() -> ClusterInfo {
        ClusterInfo {
            name: "alpha".to_owned(),
            labels: [("env".to_owned(), "prod".to_owned())].into(),
            state: "joined".to_owned(),
            connected: true,
            last_seen: 1_000_000 - 42,
            agent_version: "0.1.0".to_owned(),
            proxy_url: "https://hub.test/clusters/alpha".to_owned(),
            created_at: 900_000,
        }
    }
}

#[tonic::async_trait]
impl Admin for FakeAdmin {
    async fn add_cluster(
        &self,
        request: Request<AddClusterRequest>,
    ) -> Result<Response<AddClusterResponse>, Status> {
        self.check("AddCluster", &request)?;
        let request = request.into_inner();
        if request.name == "alpha" {
            return Err(Status::already_exists("cluster \"alpha\" already exists"));
        }
        self.added.lock().unwrap().push(request);
        Ok(Response::new(AddClusterResponse {
            join_token: "id.secret".to_owned(),
            ca_hash: "sha256:ab".to_owned(),
            hub_url: "https://hub.test:8443".to_owned(),
            token_expires_at: 1_000_000 + 3600,
            join_command: JOIN_COMMAND.to_owned(),
        }))
    }

    async fn list_clusters(
        &self,
        request: Request<ListClustersRequest>,
    ) -> Result<Response<ListClustersResponse>, Status> {
        self.check("ListClusters", &request)?;
        Ok(Response::new(ListClustersResponse {
            clusters: vec![Self::alpha()],
        }))
    }

    async fn remove_cluster(
        &self,
        request: Request<RemoveClusterRequest>,
    ) -> Result<Response<RemoveClusterResponse>, Status> {
        self.check("RemoveCluster", &request)?;
        match request.into_inner().name.as_str() {
            "alpha" => Ok(Response::new(RemoveClusterResponse {})),
            other => Err(Status::not_found(format!("no cluster named {other:?}"))),
        }
    }

    async fn argo_cd_secret(
        &self,
        request: Request<ArgoCdSecretRequest>,
    ) -> Result<Response<ArgoCdSecretResponse>, Status> {
        self.check("ArgoCdSecret", &request)?;
        match request.into_inner().name.as_str() {
            "alpha" => Ok(Response::new(ArgoCdSecretResponse {
                secret_name: "tether-cluster-alpha".to_owned(),
                namespace: "argocd".to_owned(),
                yaml: ARGOCD_YAML.to_owned(),
                json: ARGOCD_JSON.to_owned(),
                skipped_labels: vec!["Bad Key: invalid".to_owned()],
            })),
            "pending" => Err(Status::failed_precondition(
                "cluster pending is pending, not joined",
            )),
            other => Err(Status::not_found(format!(
                "cluster {other} is not registered"
            ))),
        }
    }
}

/// Serves `fake` over TLS (the [`Pki`] chain) on a loopback port; returns its address.
/// The server runs until the test's runtime ends.
pub async fn serve(fake: FakeAdmin, pki: &Pki) -> SocketAddr {
    let incoming = TcpIncoming::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = incoming.local_addr().unwrap();
    let tls = ServerTlsConfig::new().identity(Identity::from_pem(&pki.chain_pem, &pki.key_pem));
    let server = Server::builder()
        .tls_config(tls)
        .unwrap()
        .add_service(AdminServer::new(fake))
        .serve_with_incoming(incoming);
    tokio::spawn(server);
    addr
}
