//! `/healthz` (the process is alive) and `/readyz` (store reachable and keys loaded).

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::{AppState, HttpError};

/// Liveness route.
pub const HEALTHZ: &str = "/healthz";
/// Readiness route.
pub const READYZ: &str = "/readyz";

/// Answers 200 while the process can run handlers at all.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Answers 200 when the store answers a ping and signing keys are loaded, else 503 with
/// the reason.
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, HttpError> {
    state
        .store_probe()
        .check()
        .await
        .map_err(|reason| HttpError::Unavailable(format!("storage not ready: {reason}")))?;
    if state.jwks().is_none() {
        return Err(HttpError::Unavailable(
            "signing keys not loaded yet".to_owned(),
        ));
    }
    Ok(Json(json!({ "status": "ready" })))
}
