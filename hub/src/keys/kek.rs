//! The key-encryption key (KEK): encrypts signing keys at rest with AES-256-GCM.
//!
//! The file holds 32 random bytes, raw or base64 (standard or URL-safe, padding optional,
//! surrounding whitespace ignored) and must not be readable by group or others. Every
//! encryption uses a fresh random 96-bit nonce; the associated data binds the ciphertext to
//! its row's `kid` and `alg`, so a ciphertext copied to another row does not decrypt.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use base64::Engine as _;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom as _, SystemRandom};
use zeroize::Zeroizing;

use super::KeyError;

/// Length of the KEK in bytes.
pub const KEK_LEN: usize = 32;
/// Permission bits the KEK file must not have (group and others).
const FORBIDDEN_MODE_BITS: u32 = 0o077;
/// Domain separation for the associated data.
const AAD_PREFIX: &[u8] = b"tether-hub signing key v1\0";
/// Domain separation for [`Kek::seal_bound`] (other secrets at rest, e.g. upstream grants).
const BOUND_AAD_PREFIX: &[u8] = b"tether-hub sealed v1\0";

/// The key-encryption key. `Debug` never shows it.
pub struct Kek {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl Kek {
    /// Loads the KEK from `path`, refusing a file readable by group or others.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let shown = path.display().to_string();
        let metadata = fs::metadata(path).map_err(|source| KeyError::KekRead {
            path: shown.clone(),
            source,
        })?;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & FORBIDDEN_MODE_BITS != 0 {
            return Err(KeyError::KekPermissions { path: shown, mode });
        }
        let contents = Zeroizing::new(fs::read(path).map_err(|source| KeyError::KekRead {
            path: shown.clone(),
            source,
        })?);
        let bytes = decode(&contents).map_err(|reason| KeyError::KekFormat {
            path: shown,
            reason,
        })?;
        Self::from_bytes(&bytes)
    }

    /// Writes a new random KEK (base64) to `path` with mode 0600 and returns it. Refuses to
    /// overwrite an existing file. For development; production KEKs come from a Secret.
    pub fn generate_file(path: &Path) -> Result<Self, KeyError> {
        let shown = path.display().to_string();
        let rng = SystemRandom::new();
        let mut bytes = Zeroizing::new([0u8; KEK_LEN]);
        rng.fill(bytes.as_mut()).map_err(|_| KeyError::Random)?;
        let text = Zeroizing::new(format!(
            "{}\n",
            base64::engine::general_purpose::STANDARD.encode(bytes.as_ref())
        ));
        let write = |source| KeyError::KekWrite {
            path: shown.clone(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(write)?;
        }
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(write)?;
        file.write_all(text.as_bytes()).map_err(write)?;
        file.sync_all().map_err(write)?;
        Self::from_bytes(bytes.as_ref())
    }

    /// Loads `path` if it exists, else generates it (development mode).
    pub fn load_or_generate_file(path: &Path) -> Result<Self, KeyError> {
        if path.exists() {
            Self::load(path)
        } else {
            Self::generate_file(path)
        }
    }

    /// A KEK from its 32 raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        if bytes.len() != KEK_LEN {
            return Err(KeyError::KekFormat {
                path: "<bytes>".to_owned(),
                reason: format!("expected {KEK_LEN} bytes, got {}", bytes.len()),
            });
        }
        let key = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| KeyError::Crypto)?;
        Ok(Self {
            key: LessSafeKey::new(key),
            rng: SystemRandom::new(),
        })
    }

    /// Encrypts `plaintext` for the row (`kid`, `alg`): returns (ciphertext || tag, nonce).
    pub(crate) fn seal(
        &self,
        kid: &str,
        alg: &str,
        plaintext: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>), KeyError> {
        self.seal_with(aad(AAD_PREFIX, kid, alg), plaintext)
    }

    /// Decrypts a row's private key. Fails (without detail) on a wrong KEK, a tampered
    /// ciphertext or a ciphertext that belongs to another row.
    pub(crate) fn open(
        &self,
        kid: &str,
        alg: &str,
        ciphertext: &[u8],
        nonce: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        self.open_with(aad(AAD_PREFIX, kid, alg), ciphertext, nonce)
            .map_err(|()| KeyError::Decrypt {
                kid: kid.to_owned(),
            })
    }

    /// Encrypts `plaintext` bound to (`purpose`, `binding`), e.g. (`session.upstream_grant`,
    /// the session id): returns (ciphertext || tag, nonce). The associated data is distinct
    /// from the signing keys', so neither kind of ciphertext opens as the other.
    pub fn seal_bound(
        &self,
        purpose: &str,
        binding: &str,
        plaintext: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>), KeyError> {
        self.seal_with(aad(BOUND_AAD_PREFIX, purpose, binding), plaintext)
    }

    /// Decrypts what [`Kek::seal_bound`] sealed for the same (`purpose`, `binding`). Fails
    /// (without detail; `kid` names the binding) on a wrong KEK, a tampered ciphertext or one
    /// that belongs to another binding.
    pub fn open_bound(
        &self,
        purpose: &str,
        binding: &str,
        ciphertext: &[u8],
        nonce: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        self.open_with(aad(BOUND_AAD_PREFIX, purpose, binding), ciphertext, nonce)
            .map_err(|()| KeyError::Decrypt {
                kid: format!("{purpose}:{binding}"),
            })
    }

    /// AES-256-GCM with a fresh random 96-bit nonce and associated data `aad`.
    fn seal_with(&self, aad: Vec<u8>, plaintext: &[u8]) -> Result<(Vec<u8>, Vec<u8>), KeyError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| KeyError::Random)?;
        let mut buffer = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut buffer,
            )
            .map_err(|_| KeyError::Crypto)?;
        Ok((buffer, nonce.to_vec()))
    }

    /// The inverse of [`Kek::seal_with`]; `Err(())` says nothing about why.
    fn open_with(
        &self,
        aad: Vec<u8>,
        ciphertext: &[u8],
        nonce: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, ()> {
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| ())?;
        let mut buffer = Zeroizing::new(ciphertext.to_vec());
        let plaintext_len = self
            .key
            .open_in_place(nonce, Aad::from(aad), buffer.as_mut_slice())
            .map_err(|_| ())?
            .len();
        buffer.truncate(plaintext_len);
        Ok(buffer)
    }
}

/// A second handle on the same key (for a service other than the key manager).
impl Clone for Kek {
    fn clone(&self) -> Self {
        Self {
            key: self.key.clone(),
            rng: SystemRandom::new(),
        }
    }
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kek(<redacted>)")
    }
}

/// `prefix || first || 0 || second`: the separator keeps the pairs unambiguous; the two
/// prefixes keep signing-key rows (kid, alg) and bound secrets (purpose, binding) apart.
fn aad(prefix: &[u8], first: &str, second: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(prefix.len() + first.len() + 1 + second.len());
    aad.extend_from_slice(prefix);
    aad.extend_from_slice(first.as_bytes());
    aad.push(0);
    aad.extend_from_slice(second.as_bytes());
    aad
}

/// Raw 32 bytes, or base64 of 32 bytes.
fn decode(contents: &[u8]) -> Result<Zeroizing<Vec<u8>>, String> {
    if contents.len() == KEK_LEN {
        return Ok(Zeroizing::new(contents.to_vec()));
    }
    let text = std::str::from_utf8(contents)
        .map_err(|_| {
            format!(
                "expected {KEK_LEN} raw bytes or base64 text, got {} bytes",
                contents.len()
            )
        })?
        .trim();
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let decoded = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
        .map(Zeroizing::new)
        .ok_or_else(|| {
            format!(
                "expected {KEK_LEN} raw bytes or base64 text, got {} bytes that are neither",
                contents.len()
            )
        })?;
    if decoded.len() != KEK_LEN {
        return Err(format!(
            "base64 decodes to {} bytes, expected {KEK_LEN}",
            decoded.len()
        ));
    }
    Ok(decoded)
}
