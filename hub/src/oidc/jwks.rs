//! The JWKS endpoint: the published key set, from the key manager's watch channel.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::http::{AppState, HttpError};

/// Serves the JWKS with `Cache-Control: public, max-age=<keys.jwks_max_age()>`.
///
/// The max-age is strictly shorter than `keys.publish_lead` (config validation), so a key
/// is in every verifier's cached set before it signs anything.
pub async fn jwks(State(state): State<AppState>) -> Result<Response, HttpError> {
    let published = state
        .jwks()
        .ok_or_else(|| HttpError::Unavailable("signing keys not loaded yet".to_owned()))?;
    let cache_control = format!("public, max-age={}", state.jwks_max_age().as_secs());
    let cache_control = HeaderValue::from_str(&cache_control).map_err(HttpError::internal)?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CACHE_CONTROL, cache_control),
        ],
        published.body.clone(),
    )
        .into_response())
}
