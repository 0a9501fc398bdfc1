//! Secrets: redacted `Debug`, no `PartialEq`, constant-time comparison.

use subtle::ConstantTimeEq;

/// A secret string (client secret, refresh token, join token secret).
///
/// `Debug` never prints the value; compare with [`Secret::ct_eq`], which runs in constant
/// time for equal-length inputs.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value. Call sites are the places a secret leaves this type: keep them few.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Compares with another secret in constant time.
    pub fn ct_eq(&self, other: &Secret) -> bool {
        ct_eq(self.0.as_bytes(), other.0.as_bytes())
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Constant-time byte comparison (length is not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn compares_by_value() {
        assert!(Secret::new("abc").ct_eq(&Secret::new("abc")));
        assert!(!Secret::new("abc").ct_eq(&Secret::new("abd")));
        assert!(!Secret::new("abc").ct_eq(&Secret::new("abcd")));
    }
}
