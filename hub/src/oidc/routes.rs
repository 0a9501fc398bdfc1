//! Route paths of the OIDC provider, used by both the router and the discovery document.

/// OpenID Connect Discovery 1.0 §4: the provider configuration.
pub const DISCOVERY: &str = "/.well-known/openid-configuration";

/// The JSON Web Key Set of the hub's signing keys.
pub const JWKS: &str = "/.well-known/jwks.json";
