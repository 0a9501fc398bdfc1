//! Logging in through the hub with the real Okta-like IdP behind it: the certified
//! openid-client as a third-party app (ArgoCD), token exchange to clusters, upstream
//! re-validation (locked accounts, changed groups), refresh-token reuse, and every
//! refused request with its RFC 6749 code and nothing stored.

pub(crate) mod env;
mod errors;
mod openid_client;
mod sessions;
