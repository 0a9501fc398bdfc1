//! The hub's PKI for spokes: a **gRPC CA** (signs the gRPC listener's certificate; agents
//! pin it by [`ca_hash`]) and a **cluster CA** (signs agent client certificates, CN =
//! cluster name).
//!
//! Both CAs are generated once (ECDSA P-256), stored with their private keys sealed by the
//! KEK, so every replica serves the same CAs. The listener's certificate is issued at
//! startup by the gRPC CA.

use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use ring::rand::{SecureRandom, SystemRandom};
use tether_common::pin::CaPin;
use tether_common::time::UnixTime;
use zeroize::Zeroizing;

use super::GrpcError;
use crate::keys::Kek;
use crate::registry::ClusterName;
use crate::store::{Store, StoredCa};

/// Row name of the gRPC CA.
pub const GRPC_CA: &str = "grpc";
/// Row name of the cluster CA.
pub const CLUSTER_CA: &str = "cluster";
/// KEK binding purpose of CA private keys.
const SEAL_PURPOSE: &str = "hub_ca.private_key";
/// Lifetime of the CAs.
const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Lifetime of the listener's certificate (issued again at every start).
const SERVER_CERT_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);
/// Certificates are valid from a little before they are issued (clock skew).
const BACKDATE: Duration = Duration::from_secs(300);

/// The loaded CAs and the listener's certificate.
pub struct Pki {
    grpc_ca_pem: String,
    ca_hash: String,
    cluster_ca_pem: String,
    cluster_issuer: Issuer<'static, KeyPair>,
    server_cert_pem: String,
    server_key_pem: Zeroizing<String>,
    cert_lifetime: Duration,
}

/// A certificate issued to an agent.
#[derive(Debug, Clone)]
pub struct IssuedAgentCert {
    /// The certificate (PEM).
    pub pem: String,
    /// Its serial (lowercase hex).
    pub serial: String,
    /// End of validity.
    pub not_after: UnixTime,
}

impl Pki {
    /// Loads both CAs from the store (generating and storing them if missing) and issues the
    /// listener's certificate for `hosts` (DNS names or IP addresses). Agent certificates
    /// live `cert_lifetime`.
    pub async fn load_or_create(
        store: &Store,
        kek: &Kek,
        hosts: &[String],
        cert_lifetime: Duration,
        now: UnixTime,
    ) -> Result<Self, GrpcError> {
        let (grpc_ca_pem, grpc_key) =
            load_or_create_ca(store, kek, GRPC_CA, "Tether hub gRPC CA", now).await?;
        let (cluster_ca_pem, cluster_key) =
            load_or_create_ca(store, kek, CLUSTER_CA, "Tether cluster CA", now).await?;
        let grpc_issuer = Issuer::from_ca_cert_pem(&grpc_ca_pem, grpc_key).map_err(pki)?;
        let cluster_issuer = Issuer::from_ca_cert_pem(&cluster_ca_pem, cluster_key).map_err(pki)?;
        let ca_hash = ca_hash_of_pem(&grpc_ca_pem)?;

        let server_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(pki)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(pki)?;
        params.distinguished_name = dn("tether-hub gRPC");
        for host in hosts {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let san = match host.parse::<std::net::IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(host.to_owned().try_into().map_err(pki)?),
            };
            if !params.subject_alt_names.contains(&san) {
                params.subject_alt_names.push(san);
            }
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        set_validity(&mut params, now, SERVER_CERT_LIFETIME);
        params.serial_number = Some(random_serial()?.0);
        let server = params.signed_by(&server_key, &grpc_issuer).map_err(pki)?;
        Ok(Self {
            grpc_ca_pem,
            ca_hash,
            cluster_ca_pem,
            cluster_issuer,
            server_cert_pem: server.pem(),
            server_key_pem: Zeroizing::new(server_key.serialize_pem()),
            cert_lifetime,
        })
    }

    /// The gRPC CA (PEM): what agents trust when dialling the hub.
    pub fn grpc_ca_pem(&self) -> &str {
        &self.grpc_ca_pem
    }

    /// `sha256:<hex>` over the gRPC CA's SubjectPublicKeyInfo (DER).
    pub fn ca_hash(&self) -> &str {
        &self.ca_hash
    }

    /// The cluster CA (PEM): what the hub trusts for agent identities.
    pub fn cluster_ca_pem(&self) -> &str {
        &self.cluster_ca_pem
    }

    /// The listener's certificate (PEM).
    pub fn server_cert_pem(&self) -> &str {
        &self.server_cert_pem
    }

    /// The listener's private key (PEM).
    pub fn server_key_pem(&self) -> &str {
        &self.server_key_pem
    }

    /// The TLS configuration of the gRPC listener: the server certificate, and client
    /// certificates (optional: `Join` has none yet) checked against the cluster CA.
    pub fn server_tls(&self) -> tonic::transport::ServerTlsConfig {
        // The chain carries the gRPC CA after the leaf: clients that trust by pin
        // (`--ca-hash`) find the pinned key in what the server presents.
        let chain = format!("{}\n{}", self.server_cert_pem.trim_end(), self.grpc_ca_pem);
        tonic::transport::ServerTlsConfig::new()
            .identity(tonic::transport::Identity::from_pem(
                chain.as_bytes(),
                self.server_key_pem.as_bytes(),
            ))
            .client_ca_root(tonic::transport::Certificate::from_pem(
                self.cluster_ca_pem.as_bytes(),
            ))
            .client_auth_optional(true)
    }

    /// Verifies the CSR (PEM) and its self-signature, checks that its subject CN is
    /// `cluster`, and issues a client certificate for its key: CN = `cluster`, clientAuth,
    /// valid for the configured lifetime from `now`. Nothing else of the CSR is copied.
    pub fn sign_csr(
        &self,
        csr_pem: &str,
        cluster: &ClusterName,
        now: UnixTime,
    ) -> Result<IssuedAgentCert, GrpcError> {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem).map_err(|err| {
            GrpcError::InvalidArgument(format!(
                "the CSR is not a valid, self-signed PKCS#10 request in PEM ({err}); generate a new key and CSR"
            ))
        })?;
        let cn = csr
            .params
            .distinguished_name
            .get(&DnType::CommonName)
            .and_then(dn_value_str);
        if cn.as_deref() != Some(cluster.as_str()) {
            return Err(GrpcError::InvalidArgument(format!(
                "the CSR's subject CN is {:?} but must be the cluster name {cluster:?}",
                cn.unwrap_or_default()
            )));
        }
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(pki)?;
        params.distinguished_name = dn(cluster.as_str());
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let not_after = set_validity(&mut params, now, self.cert_lifetime);
        let (serial, serial_hex) = random_serial()?;
        params.serial_number = Some(serial);
        let csr = CertificateSigningRequestParams {
            params,
            public_key: csr.public_key,
        };
        let cert = csr.signed_by(&self.cluster_issuer).map_err(pki)?;
        Ok(IssuedAgentCert {
            pem: cert.pem(),
            serial: serial_hex,
            not_after,
        })
    }
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki")
            .field("ca_hash", &self.ca_hash)
            .field("cert_lifetime", &self.cert_lifetime)
            .finish_non_exhaustive()
    }
}

/// The identity in a client certificate (DER) the TLS layer already chained to the
/// cluster CA: (CN as a cluster name, serial in lowercase hex).
pub fn peer_identity(cert_der: &[u8]) -> Option<(ClusterName, String)> {
    use x509_parser::prelude::FromDer as _;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(cert_der).ok()?;
    let cn = cert.subject().iter_common_name().next()?.as_str().ok()?;
    let name = ClusterName::parse(cn).ok()?;
    Some((name, hex(cert.tbs_certificate.raw_serial())))
}

/// `sha256:<hex>` over the SubjectPublicKeyInfo (DER) of the certificate `pem`: the pin
/// `tether-agent join --ca-hash` and `tetherctl --ca-hash` check ([`CaPin`], one rule).
pub fn ca_hash_of_pem(pem: &str) -> Result<String, GrpcError> {
    let der = pem_der(pem)?;
    CaPin::of_cert(&der)
        .map(|pin| pin.to_string())
        .ok_or_else(|| GrpcError::Pki("cannot find the public key of a CA certificate".into()))
}

/// The DER of the first certificate in `pem`.
fn pem_der(pem: &str) -> Result<Vec<u8>, GrpcError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject as _;
    CertificateDer::from_pem_slice(pem.as_bytes())
        .map(|der| der.to_vec())
        .map_err(|err| GrpcError::Pki(format!("cannot read a certificate PEM: {err}")))
}

/// Loads CA `name` (opening its key with the KEK) or generates and stores it.
async fn load_or_create_ca(
    store: &Store,
    kek: &Kek,
    name: &str,
    common_name: &str,
    now: UnixTime,
) -> Result<(String, KeyPair), GrpcError> {
    let stored = match store.ca(name).await? {
        Some(stored) => stored,
        None => {
            let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(pki)?;
            let mut params = CertificateParams::new(Vec::<String>::new()).map_err(pki)?;
            params.distinguished_name = dn(common_name);
            params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
            params.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            set_validity(&mut params, now, CA_LIFETIME);
            params.serial_number = Some(random_serial()?.0);
            let cert = params.self_signed(&key).map_err(pki)?;
            let der = Zeroizing::new(key.serialize_der());
            let (key_ciphertext, key_nonce) = kek.seal_bound(SEAL_PURPOSE, name, &der)?;
            let generated = StoredCa {
                cert_pem: cert.pem(),
                key_ciphertext,
                key_nonce,
            };
            // Another replica may have won the race: use whatever is stored.
            let stored = store.insert_or_load_ca(name, &generated, now).await?;
            if stored.cert_pem == generated.cert_pem {
                tracing::info!(ca = name, "generated the hub's {common_name}");
            }
            stored
        }
    };
    let der = kek.open_bound(
        SEAL_PURPOSE,
        name,
        &stored.key_ciphertext,
        &stored.key_nonce,
    )?;
    let key = KeyPair::try_from(der.as_slice()).map_err(pki)?;
    Ok((stored.cert_pem, key))
}

fn dn(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

fn dn_value_str(value: &rcgen::DnValue) -> Option<String> {
    match value {
        rcgen::DnValue::Utf8String(s) => Some(s.clone()),
        rcgen::DnValue::PrintableString(s) => Some(s.as_str().to_owned()),
        rcgen::DnValue::Ia5String(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

/// Sets not_before (backdated) and not_after = `now + lifetime`; returns not_after.
fn set_validity(params: &mut CertificateParams, now: UnixTime, lifetime: Duration) -> UnixTime {
    let not_after = now.saturating_add(lifetime);
    let at = |t: UnixTime| {
        time::OffsetDateTime::from_unix_timestamp(t.as_secs())
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
    };
    params.not_before = at(now.saturating_sub(BACKDATE));
    params.not_after = at(not_after);
    not_after
}

/// A random positive 16-byte serial whose DER encoding is exactly its bytes, and its hex.
fn random_serial() -> Result<(SerialNumber, String), GrpcError> {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| GrpcError::Pki("the system random generator failed".to_owned()))?;
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    Ok((SerialNumber::from_slice(&bytes), hex(&bytes)))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn pki(err: impl std::fmt::Display) -> GrpcError {
    GrpcError::Pki(err.to_string())
}
