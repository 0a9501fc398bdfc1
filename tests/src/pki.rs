//! Test PKI generated at run time with rcgen: ECDSA P-256 everywhere.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use crate::error::{Error, Result};

/// A certificate authority.
#[derive(Debug)]
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
    key_pem: String,
}

/// A certificate and its PKCS#8 key, both PEM.
#[derive(Debug, Clone)]
pub struct IssuedCert {
    /// Certificate (PEM).
    pub cert_pem: String,
    /// Private key (PKCS#8 PEM).
    pub key_pem: String,
}

/// A signing key pair (e.g. for ServiceAccount tokens).
#[derive(Debug, Clone)]
pub struct SigningKeyPair {
    /// Private key (PKCS#8 PEM).
    pub private_pem: String,
    /// Public key (SPKI PEM).
    pub public_pem: String,
}

impl Ca {
    /// A new self-signed CA named `cn`.
    pub fn new(cn: &str) -> Result<Self> {
        let key = KeyPair::generate().map_err(Error::pki("CA key"))?;
        let key_pem = key.serialize_pem();
        let mut params =
            CertificateParams::new(Vec::<String>::new()).map_err(Error::pki("CA params"))?;
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer = CertifiedIssuer::self_signed(params, key).map_err(Error::pki("CA cert"))?;
        Ok(Self { issuer, key_pem })
    }

    /// The CA certificate (PEM).
    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    /// The CA key (PKCS#8 PEM).
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// A serving certificate for `sans` (IP addresses and DNS names).
    pub fn issue_server(&self, cn: &str, sans: &[&str]) -> Result<IssuedCert> {
        let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        self.issue(cn, None, sans, ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate with CN `cn` (the Kubernetes user) and optionally one O `org`
    /// (its group; rcgen keeps one value per attribute type).
    pub fn issue_client(&self, cn: &str, org: Option<&str>) -> Result<IssuedCert> {
        self.issue(cn, org, Vec::new(), ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn issue(
        &self,
        cn: &str,
        org: Option<&str>,
        sans: Vec<String>,
        eku: ExtendedKeyUsagePurpose,
    ) -> Result<IssuedCert> {
        let key = KeyPair::generate().map_err(Error::pki(format!("key for {cn}")))?;
        let mut params =
            CertificateParams::new(sans).map_err(Error::pki(format!("params for {cn}")))?;
        params.distinguished_name.push(DnType::CommonName, cn);
        if let Some(o) = org {
            params.distinguished_name.push(DnType::OrganizationName, o);
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![eku];
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(Error::pki(format!("cert for {cn}")))?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

impl SigningKeyPair {
    /// A new ECDSA P-256 key pair.
    pub fn generate() -> Result<Self> {
        let key = KeyPair::generate().map_err(Error::pki("signing key"))?;
        Ok(Self {
            private_pem: key.serialize_pem(),
            public_pem: key.public_key_pem(),
        })
    }
}
