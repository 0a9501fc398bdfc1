//! Route paths of the OIDC provider, used by both the router and the discovery document.

/// OpenID Connect Discovery 1.0 §4: the provider configuration.
pub const DISCOVERY: &str = "/.well-known/openid-configuration";

/// The JSON Web Key Set of the hub's signing keys.
pub const JWKS: &str = "/.well-known/jwks.json";

/// OAuth 2.0 authorization endpoint (RFC 6749 §3.1): starts a browser login.
pub const AUTHORIZE: &str = "/authorize";

/// The hub's redirect URI at the upstream IdP: `{issuer}/callback`.
pub const CALLBACK: &str = "/callback";

/// OAuth 2.0 token endpoint (RFC 6749 §3.2): code, refresh and token exchange grants.
pub const TOKEN: &str = "/token";

/// OpenID Connect UserInfo endpoint.
pub const USERINFO: &str = "/userinfo";

/// OAuth 2.0 token revocation (RFC 7009).
pub const REVOKE: &str = "/revoke";

/// OpenID Connect RP-initiated logout (`end_session_endpoint`).
pub const LOGOUT: &str = "/logout";

/// OAuth 2.0 device authorization endpoint (RFC 8628 §3.1): `tetherctl login --no-browser`.
pub const DEVICE_AUTHORIZATION: &str = "/device_authorization";

/// The device verification page (RFC 8628 `verification_uri`): the user enters the code.
pub const DEVICE: &str = "/device";

/// The clusters the bearer of a hub access token may reach, with their proxy URL and CA
/// (`tetherctl kubeconfig`).
pub const CLUSTERS: &str = "/api/v1/clusters";
