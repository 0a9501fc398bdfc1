//! `tether-hub client-secret`: a new confidential-client secret and the hash that goes into
//! the hub's `clients:` configuration (the hub never stores the secret itself).

use std::io::Read as _;
use std::process::ExitCode;

use clap::Args;
use tether_common::secret::Secret;

use super::EXIT_FAILURE;
use crate::clients::{generate_secret, hash_secret};
use crate::config::EXIT_CONFIG;

/// Shortest secret accepted from stdin: a confidential client's secret is a password for a
/// machine, hashed once with SHA-256, so it must carry real entropy.
const MIN_SECRET_LEN: usize = 32;

/// `client-secret` flags.
#[derive(Debug, Args)]
pub struct ClientSecretArgs {
    /// Hash a secret read from stdin (trailing newline removed) instead of generating one.
    #[arg(long)]
    from_stdin: bool,
}

/// Prints `secret: ...` (generated) and `secret_hash: sha256:...`.
pub fn run(args: ClientSecretArgs) -> ExitCode {
    let secret = if args.from_stdin {
        let mut text = String::new();
        if let Err(err) = std::io::stdin().read_to_string(&mut text) {
            eprintln!("error: reading stdin: {err}");
            return ExitCode::from(EXIT_FAILURE);
        }
        let text = text.trim_end_matches(['\n', '\r']);
        if text.len() < MIN_SECRET_LEN {
            eprintln!(
                "error: the secret must be at least {MIN_SECRET_LEN} characters (generate one: tether-hub client-secret)"
            );
            return ExitCode::from(EXIT_CONFIG);
        }
        Secret::new(text)
    } else {
        match generate_secret() {
            Ok(secret) => {
                println!("secret: {}", secret.expose());
                secret
            }
            Err(err) => {
                eprintln!("error: {err}");
                return ExitCode::from(EXIT_FAILURE);
            }
        }
    };
    println!("secret_hash: {}", hash_secret(&secret));
    ExitCode::SUCCESS
}
