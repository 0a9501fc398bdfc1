//! The Admin API: `AddCluster`, `ListClusters`, `RemoveCluster`, `ArgoCdSecret`.
//!
//! Every call needs `authorization: Bearer <admin token>`: a token signed by this hub's
//! keys (its own JWKS), issuer = the hub, audience [`ADMIN_AUDIENCE`], carrying the group
//! [`ADMIN_GROUP`]. Anything else is `UNAUTHENTICATED`. Every call is audited with the
//! admin's `sub`.

use std::time::Duration;

use tether_common::token::{KeySet, Verifier, VerifyOptions};
use tether_proto::v1::admin_server::Admin;
use tether_proto::v1::{
    AddClusterRequest, AddClusterResponse, ArgoCdSecretRequest, ArgoCdSecretResponse, ClusterInfo,
    ListClustersRequest, ListClustersResponse, RemoveClusterRequest, RemoveClusterResponse,
};
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use super::{DEFAULT_JOIN_TOKEN_TTL, GrpcError, GrpcState, MAX_JOIN_TOKEN_TTL};
use crate::admin::{ADMIN_AUDIENCE, ADMIN_GROUP};
use crate::registry::{ClusterName, audit_kind};
use crate::store::{AuditOutcome, AuditRecord};

/// Audit kind of a refused Admin API call.
pub const AUDIT_ADMIN_DENIED: &str = "admin_api.denied";

/// The `Admin` service.
#[derive(Debug, Clone)]
pub struct AdminService {
    state: GrpcState,
}

impl AdminService {
    /// The service over `state`.
    pub fn new(state: GrpcState) -> Self {
        Self { state }
    }

    /// The admin's `sub`, if the call carries a valid admin token; audits a refusal.
    async fn authenticate(&self, metadata: &MetadataMap, call: &str) -> Result<String, GrpcError> {
        let result = self.verify(metadata);
        if let Err(err) = &result {
            let record = AuditRecord::new(
                self.state.clock().now().as_secs(),
                AUDIT_ADMIN_DENIED,
                "unauthenticated",
                AuditOutcome::Denied,
            )
            .with_reason(err.to_string())
            .with_details(serde_json::json!({ "call": call }));
            if let Err(err) = self.state.store().append_audit(&record).await {
                tracing::error!(error = %err, "cannot audit a refused admin call");
            }
        }
        result
    }

    fn verify(&self, metadata: &MetadataMap) -> Result<String, GrpcError> {
        let unauthenticated = |why: &str| {
            GrpcError::Unauthenticated(format!(
                "{why}: send `authorization: Bearer <admin token>` (`tetherctl login`, or `tether-hub admin-token` for break-glass)"
            ))
        };
        let header = metadata
            .get("authorization")
            .ok_or_else(|| unauthenticated("no admin token"))?
            .to_str()
            .map_err(|_| unauthenticated("unreadable authorization header"))?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| unauthenticated("the authorization header is not a Bearer token"))?
            .trim();
        let keys = self.state.keys().current();
        let verifier = Verifier::new(
            KeySet::from_jwks(&keys.jwks),
            VerifyOptions::new(self.state.issuer().as_str(), ADMIN_AUDIENCE),
        );
        let claims = verifier
            .verify(token, self.state.clock().now())
            .map_err(|_| unauthenticated("invalid or expired admin token"))?;
        if !claims.groups.iter().any(|g| g == ADMIN_GROUP) {
            return Err(unauthenticated("the token is not an admin token"));
        }
        Ok(claims.sub)
    }

    async fn add_cluster(
        &self,
        admin: &str,
        request: AddClusterRequest,
    ) -> Result<AddClusterResponse, GrpcError> {
        let name = parse_name(&request.name)?;
        let ttl = match request.token_ttl_seconds {
            0 => DEFAULT_JOIN_TOKEN_TTL,
            secs => u64::try_from(secs)
                .ok()
                .map(Duration::from_secs)
                .filter(|ttl| *ttl <= MAX_JOIN_TOKEN_TTL)
                .ok_or_else(|| {
                    GrpcError::InvalidArgument(format!(
                        "token_ttl_seconds must be between 1 and {}",
                        MAX_JOIN_TOKEN_TTL.as_secs()
                    ))
                })?,
        };
        let labels = request.labels.into_iter().collect();
        let now = self.state.clock().now();
        let audit = AuditRecord::new(
            now.as_secs(),
            audit_kind::CLUSTER_ADDED,
            admin,
            AuditOutcome::Success,
        )
        .with_subject(name.to_string())
        .with_details(serde_json::json!({ "labels": &labels, "token_ttl_seconds": ttl.as_secs() }));
        let (_, id, secret, expires_at) = self
            .state
            .store()
            .add_cluster_with_token(&name, &labels, ttl, now, &audit)
            .await?;
        let token = format!("{id}.{}", secret.expose());
        let ca_hash = self.state.pki().ca_hash().to_owned();
        let hub_url = self.state.hub_url().to_owned();
        let join_command = join_command(&hub_url, &token, &ca_hash, &name);
        tracing::info!(cluster = %name, %admin, "cluster added");
        self.state.argocd().poke();
        Ok(AddClusterResponse {
            join_token: token,
            ca_hash,
            hub_url,
            token_expires_at: expires_at.as_secs(),
            join_command,
        })
    }

    async fn list_clusters(&self, admin: &str) -> Result<ListClustersResponse, GrpcError> {
        let records = self.state.store().list_cluster_records().await?;
        let now = self.state.clock().now();
        let audit = AuditRecord::new(
            now.as_secs(),
            audit_kind::CLUSTERS_LISTED,
            admin,
            AuditOutcome::Success,
        )
        .with_details(serde_json::json!({ "count": records.len() }));
        self.state.store().append_audit(&audit).await?;
        let connections = self.state.connections();
        let clusters = records
            .into_iter()
            .map(|r| ClusterInfo {
                connected: connections.is_connected(&r.row.name),
                name: r.row.name.to_string(),
                labels: r.row.labels.into_iter().collect(),
                state: r.state.as_str().to_owned(),
                last_seen: r.last_seen.map_or(0, |t| t.as_secs()),
                agent_version: r.agent_version,
                proxy_url: r.proxy_url,
                created_at: r.row.created_at.as_secs(),
            })
            .collect();
        Ok(ListClustersResponse { clusters })
    }

    async fn remove_cluster(
        &self,
        admin: &str,
        request: RemoveClusterRequest,
    ) -> Result<RemoveClusterResponse, GrpcError> {
        let name = parse_name(&request.name)?;
        let now = self.state.clock().now();
        let audit = AuditRecord::new(
            now.as_secs(),
            audit_kind::CLUSTER_REMOVED,
            admin,
            AuditOutcome::Success,
        )
        .with_subject(name.to_string());
        self.state
            .store()
            .mark_cluster_removed(&name, now, &audit)
            .await?;
        let was_connected = self.state.connections().close(&name);
        tracing::info!(cluster = %name, %admin, was_connected, "cluster removed");
        self.state.argocd().poke();
        Ok(RemoveClusterResponse {})
    }
}

impl AdminService {
    /// `ArgoCdSecret`: the cluster's ArgoCD Secret, rendered by the reconciler's function.
    async fn argocd_secret(
        &self,
        admin: &str,
        request: ArgoCdSecretRequest,
    ) -> Result<ArgoCdSecretResponse, GrpcError> {
        use crate::argocd::secret;

        let name = parse_name(&request.name)?;
        let record = self
            .state
            .store()
            .cluster_record(&name)
            .await?
            .ok_or_else(|| {
                GrpcError::NotFound(format!(
                    "cluster {name} is not registered: see `tetherctl cluster list`"
                ))
            })?;
        let settings = self.state.argocd().settings().ok_or_else(|| {
            GrpcError::FailedPrecondition(
                "this hub does not write ArgoCD Secrets: add the `argocd` and `hub_cluster` \
                 sections to its configuration"
                    .to_owned(),
            )
        })?;
        secret::published(&record).map_err(|e| GrpcError::FailedPrecondition(e.to_string()))?;
        let rendered = secret::render(&record, settings)?;
        let response = ArgoCdSecretResponse {
            secret_name: secret::secret_name(&name),
            namespace: settings.namespace.clone(),
            yaml: secret::to_yaml(&rendered.secret)?,
            json: secret::to_json(&rendered.secret)?,
            skipped_labels: rendered
                .skipped_labels
                .iter()
                .map(|s| format!("{}: {}", s.key, s.reason))
                .collect(),
        };
        let audit = AuditRecord::new(
            self.state.clock().now().as_secs(),
            crate::argocd::audit_kind::SECRET_SHOWN,
            admin,
            AuditOutcome::Success,
        )
        .with_subject(name.to_string())
        .with_details(serde_json::json!({
            "secret": response.secret_name,
            "namespace": response.namespace,
        }));
        self.state.store().append_audit(&audit).await?;
        Ok(response)
    }
}

/// The command an operator runs against the spoke.
pub fn join_command(hub_url: &str, token: &str, ca_hash: &str, name: &ClusterName) -> String {
    format!(
        "tether-agent join --hub {hub_url} --token {token} --ca-hash {ca_hash} --cluster {name}"
    )
}

fn parse_name(name: &str) -> Result<ClusterName, GrpcError> {
    ClusterName::parse(name).map_err(|err| GrpcError::InvalidArgument(err.to_string()))
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn add_cluster(
        &self,
        request: Request<AddClusterRequest>,
    ) -> Result<Response<AddClusterResponse>, Status> {
        let admin = self.authenticate(request.metadata(), "AddCluster").await?;
        let result = AdminService::add_cluster(self, &admin, request.into_inner()).await;
        result.map(Response::new).map_err(Status::from)
    }

    async fn list_clusters(
        &self,
        request: Request<ListClustersRequest>,
    ) -> Result<Response<ListClustersResponse>, Status> {
        let admin = self
            .authenticate(request.metadata(), "ListClusters")
            .await?;
        let result = AdminService::list_clusters(self, &admin).await;
        result.map(Response::new).map_err(Status::from)
    }

    async fn remove_cluster(
        &self,
        request: Request<RemoveClusterRequest>,
    ) -> Result<Response<RemoveClusterResponse>, Status> {
        let admin = self
            .authenticate(request.metadata(), "RemoveCluster")
            .await?;
        let result = AdminService::remove_cluster(self, &admin, request.into_inner()).await;
        result.map(Response::new).map_err(Status::from)
    }

    async fn argo_cd_secret(
        &self,
        request: Request<ArgoCdSecretRequest>,
    ) -> Result<Response<ArgoCdSecretResponse>, Status> {
        let admin = self
            .authenticate(request.metadata(), "ArgoCdSecret")
            .await?;
        let result = AdminService::argocd_secret(self, &admin, request.into_inner()).await;
        result.map(Response::new).map_err(Status::from)
    }
}
