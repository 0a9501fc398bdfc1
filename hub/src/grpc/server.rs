//! The tonic server: the three services on one TLS listener.

use std::future::Future;

use tether_proto::v1::admin_server::AdminServer;
use tether_proto::v1::control_server::ControlServer;
use tether_proto::v1::registration_server::RegistrationServer;
use tokio::net::TcpListener;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

use super::GrpcState;
use super::admin::AdminService;
use super::control::ControlService;
use super::registration::RegistrationService;

/// Serves Registration, Control and Admin on `listener` with the PKI's TLS configuration
/// (client certificates optional, checked against the cluster CA) until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    state: GrpcState,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let tls = state.pki().server_tls();
    Server::builder()
        .tls_config(tls)?
        .add_service(RegistrationServer::new(RegistrationService::new(
            state.clone(),
        )))
        .add_service(ControlServer::new(ControlService::new(state.clone())))
        .add_service(AdminServer::new(AdminService::new(state)))
        .serve_with_incoming_shutdown(TcpIncoming::from(listener), shutdown)
        .await
}
