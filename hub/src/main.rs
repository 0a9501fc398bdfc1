//! `tether-hub`: the Tether hub server and its maintenance commands.

fn main() -> std::process::ExitCode {
    // First, before anything builds a TLS config: rustls, tokio-rustls, reqwest and the
    // OTLP exporter must all use ring (STACK.md pitfall 1). It fails only if a provider is
    // already installed, which nothing can have done yet.
    let _ = rustls::crypto::ring::default_provider().install_default();
    tether_hub::cli::main()
}
