//! `Registration.Join`: redeem a join token and get a client certificate for a CSR.
//!
//! Every refusal happens before anything is written; the token is spent and the cluster
//! marked joined in one transaction (with the audit record), so a racing second join with
//! the same token is refused and writes nothing either.

use tether_proto::v1::registration_server::Registration;
use tether_proto::v1::{JoinRequest, JoinResponse};
use tonic::{Request, Response, Status};

use super::{GrpcError, GrpcState, METRIC_JOINS};
use crate::registry::{ClusterName, ClusterState, JoinToken, audit_kind, cluster_audience};
use crate::store::{AuditOutcome, AuditRecord, IssuedCert, JoinOutcome};

/// What to tell an operator whose token cannot be used.
const NEW_TOKEN_HINT: &str =
    "ask an admin for a new one: `tetherctl cluster remove NAME` then `tetherctl cluster add NAME`";

/// The `Registration` service.
#[derive(Debug, Clone)]
pub struct RegistrationService {
    state: GrpcState,
}

impl RegistrationService {
    /// The service over `state`.
    pub fn new(state: GrpcState) -> Self {
        Self { state }
    }

    async fn join(&self, request: JoinRequest) -> Result<JoinResponse, GrpcError> {
        let state = &self.state;
        let token = JoinToken::parse(&request.token).ok_or_else(|| {
            GrpcError::InvalidArgument(
                "the join token is malformed: pass ID.SECRET exactly as printed by `tetherctl cluster add`"
                    .to_owned(),
            )
        })?;
        let cluster = ClusterName::parse(&request.cluster).map_err(|err| {
            GrpcError::InvalidArgument(format!(
                "{err}: pass the --cluster printed by `tetherctl cluster add`"
            ))
        })?;
        let now = state.clock().now();
        let row = state
            .store()
            .join_token(&token.id)
            .await?
            .filter(|row| row.secret_matches(&token.secret))
            .ok_or_else(|| {
                GrpcError::PermissionDenied(format!("unknown join token: {NEW_TOKEN_HINT}"))
            })?;
        if row.cluster != cluster {
            return Err(GrpcError::PermissionDenied(format!(
                "this join token is for another cluster than {cluster}: pass the --cluster printed with it"
            )));
        }
        if row.used_at.is_some() {
            return Err(GrpcError::PermissionDenied(format!(
                "this join token was already used: {NEW_TOKEN_HINT}"
            )));
        }
        if row.expires_at <= now {
            return Err(GrpcError::FailedPrecondition(format!(
                "this join token expired: {NEW_TOKEN_HINT}"
            )));
        }
        let record = state.store().cluster_record(&cluster).await?;
        match record.as_ref().map(|r| r.state) {
            Some(ClusterState::Pending) => {}
            Some(ClusterState::Joined) => {
                return Err(GrpcError::FailedPrecondition(format!(
                    "cluster {cluster} has already joined: to join again, remove it (`tetherctl cluster remove {cluster}`) and add it again"
                )));
            }
            Some(ClusterState::Removed) | None => {
                return Err(GrpcError::FailedPrecondition(format!(
                    "cluster {cluster} was removed: add it again with `tetherctl cluster add {cluster}` for a new token"
                )));
            }
        }
        let issued = state.pki().sign_csr(&request.csr_pem, &cluster, now)?;
        let agent_version: String = request.agent_version.chars().take(64).collect();
        let audit = AuditRecord::new(
            now.as_secs(),
            audit_kind::CLUSTER_JOINED,
            format!("cluster:{cluster}"),
            AuditOutcome::Success,
        )
        .with_subject(cluster.to_string())
        .with_details(serde_json::json!({
            "token_id": row.id.as_str(),
            "serial": issued.serial,
            "not_after": issued.not_after.as_secs(),
            "agent_version": agent_version,
        }));
        let cert = IssuedCert {
            serial: issued.serial.clone(),
            not_after: issued.not_after,
        };
        match state
            .store()
            .complete_join(&row.id, &cluster, &cert, &agent_version, now, &audit)
            .await?
        {
            JoinOutcome::Joined => {}
            JoinOutcome::TokenUnusable => {
                return Err(GrpcError::PermissionDenied(format!(
                    "this join token was already used: {NEW_TOKEN_HINT}"
                )));
            }
            JoinOutcome::ClusterNotPending => {
                return Err(GrpcError::FailedPrecondition(format!(
                    "cluster {cluster} is no longer waiting to join: see `tetherctl cluster list`"
                )));
            }
        }
        tracing::info!(%cluster, serial = %issued.serial, "cluster joined");
        state.argocd().poke();
        Ok(JoinResponse {
            certificate_pem: issued.pem,
            cluster_ca_pem: state.pki().cluster_ca_pem().to_owned(),
            hub_ca_pem: state.pki().grpc_ca_pem().to_owned(),
            issuer: state.issuer().as_str().to_owned(),
            audience: cluster_audience(&cluster),
            not_after: issued.not_after.as_secs(),
        })
    }
}

#[tonic::async_trait]
impl Registration for RegistrationService {
    async fn join(&self, request: Request<JoinRequest>) -> Result<Response<JoinResponse>, Status> {
        let result = RegistrationService::join(self, request.into_inner()).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(GrpcError::InvalidArgument(_)) => "invalid",
            Err(
                GrpcError::PermissionDenied(_)
                | GrpcError::FailedPrecondition(_)
                | GrpcError::Unauthenticated(_),
            ) => "denied",
            Err(_) => "error",
        };
        metrics::counter!(METRIC_JOINS, "outcome" => outcome).increment(1);
        if let Err(err) = &result {
            tracing::warn!(outcome, reason = %err, "join refused");
        }
        result.map(Response::new).map_err(Status::from)
    }
}
