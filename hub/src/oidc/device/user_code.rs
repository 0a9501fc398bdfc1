//! [`UserCode`]: the short code a user types at `/device` (RFC 8628 §6.1).
//!
//! 8 characters of the 20 consonants `BCDFGHJKLMNPQRSTVWXZ` (no vowels, so no words; no
//! look-alikes such as `0`/`O`, `1`/`I`): 20^8 ≈ 2.6·10^10 codes, about 34.6 bits. It is
//! shown as `XXXX-XXXX`; input is normalised (uppercase, `-` and spaces dropped) before it
//! is checked.

use ring::rand::{SecureRandom as _, SystemRandom};

use super::DeviceError;
use crate::sessions::secrets::sha256_hex;

/// The characters of a user code (RFC 8628 §6.1).
pub const ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
/// Characters in a user code (without the dash).
pub const LEN: usize = 8;
/// Longest input looked at (a pasted code with some spaces); longer is refused unread.
const MAX_INPUT: usize = 64;
/// Random bytes at or above this are redrawn: 240 = 12 × 20, so `byte % 20` is uniform.
const UNBIASED_BELOW: u8 = 240;
/// At most this many 32-byte draws for one code (each keeps ~94% of its bytes, and 8 are
/// needed: failing 4 draws in a row means the generator is broken).
const MAX_DRAWS: usize = 4;

/// A normalised user code: 8 letters of [`ALPHABET`], no dash. `Debug` is redacted: a
/// pending user code lets whoever types it approve the device.
#[derive(Clone)]
pub struct UserCode(String);

impl UserCode {
    /// A fresh uniformly random code.
    pub fn generate(rng: &SystemRandom) -> Result<Self, DeviceError> {
        let mut code = String::with_capacity(LEN);
        for _ in 0..MAX_DRAWS {
            let mut bytes = [0u8; 32];
            rng.fill(&mut bytes).map_err(|_| DeviceError::Random)?;
            for byte in bytes.into_iter().filter(|b| *b < UNBIASED_BELOW) {
                code.push(char::from(ALPHABET[usize::from(byte % 20)]));
                if code.len() == LEN {
                    return Ok(Self(code));
                }
            }
        }
        Err(DeviceError::Random)
    }

    /// Normalises what a user typed: uppercase, `-` and whitespace dropped; `None` unless
    /// exactly [`LEN`] characters of [`ALPHABET`] remain.
    pub fn parse(input: &str) -> Option<Self> {
        if input.len() > MAX_INPUT {
            return None;
        }
        let code: String = input
            .chars()
            .filter(|c| *c != '-' && !c.is_whitespace())
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let valid = code.len() == LEN && code.bytes().all(|b| ALPHABET.contains(&b));
        valid.then_some(Self(code))
    }

    /// The code as shown to the user: `XXXX-XXXX`.
    pub fn display(&self) -> String {
        let (first, second) = self.0.split_at(LEN / 2);
        format!("{first}-{second}")
    }

    /// What the store keeps: lowercase hex SHA-256 of the normalised code.
    pub fn hash(&self) -> String {
        sha256_hex(self.0.as_bytes())
    }
}

impl std::fmt::Debug for UserCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UserCode(<redacted>)")
    }
}
