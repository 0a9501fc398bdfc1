//! The demo's `STATE_DIR/env`: shell variables that scripts, docs and checks source.

use std::fmt::Write as _;
use std::path::Path;

/// Collects `NAME=value` lines, quoting values for POSIX shells.
#[derive(Debug, Default)]
pub struct EnvFile {
    text: String,
}

impl EnvFile {
    /// Adds `name=value`.
    pub fn set(&mut self, name: &str, value: impl AsRef<str>) {
        let _ = writeln!(self.text, "{name}={}", shell_quote(value.as_ref()));
    }

    /// Writes the file atomically (temp file + rename), so a reader never sees half of it.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, &self.text)?;
        std::fs::rename(&tmp, path)
    }
}

/// `spoke-1` -> `SPOKE_1`.
pub fn var_name(cluster: &str) -> String {
    cluster
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_quoting() {
        assert_eq!(var_name("spoke-1"), "SPOKE_1");
        let mut env = EnvFile::default();
        env.set("A", "it's");
        assert_eq!(env.text, "A='it'\\''s'\n");
    }
}
