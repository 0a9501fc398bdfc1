//! A fresh ECDSA P-256 key and a PKCS#10 CSR with CN = cluster name. The key never leaves
//! the spoke; only the CSR goes to the hub.

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, PKCS_ECDSA_P256_SHA256};

use crate::error::Result;

/// A new key and the CSR for it. `Debug` does not show the key.
pub struct KeyAndCsr {
    /// The private key, PKCS#8 PEM.
    pub key_pem: String,
    /// The CSR, PEM.
    pub csr_pem: String,
}

impl std::fmt::Debug for KeyAndCsr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyAndCsr")
            .field("csr_pem", &self.csr_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// Generates a P-256 key and a CSR whose subject is `CN=<cluster>`.
pub fn generate(cluster: &str) -> Result<KeyAndCsr> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cluster);
    params.distinguished_name = dn;
    let csr = params.serialize_request(&key)?;
    Ok(KeyAndCsr {
        key_pem: key.serialize_pem(),
        csr_pem: csr.pem()?,
    })
}

#[cfg(test)]
mod tests;
