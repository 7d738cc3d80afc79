//! `POST /v1/token`: dev mode's token provider. Any user id gets a token, like a test token
//! provider, so the quick start needs no setup. Off (404) with `--auth secret`, where the app's own
//! backend signs tokens with the shared secret.

use axum::extract::State;
use axum::Json;
use chatsync_protocol::{ErrorBody, TokenRequest, TokenResponse};

use crate::app::{ApiJson, AppState};
use crate::error::ApiError;
use crate::{validate, AuthMode};

/// Issues a bearer token for any user (dev mode only).
#[utoipa::path(
    post,
    path = "/v1/token",
    tag = "auth",
    request_body = TokenRequest,
    responses(
        (status = 200, description = "A token for that user", body = TokenResponse),
        (status = 400, description = "Malformed body or user id", body = ErrorBody),
        (status = 404, description = "The server runs with --auth secret", body = ErrorBody),
    )
)]
pub async fn issue_token(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<TokenRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    if state.auth_mode != AuthMode::Dev {
        return Err(ApiError::not_found(
            "token issuing is off: this server runs with --auth secret",
        ));
    }
    validate::id("user_id", &request.user_id)?;
    Ok(Json(TokenResponse {
        access_token: state.keys.issue(&request.user_id),
        token_type: "bearer".into(),
        expires_in: state.keys.ttl_secs(),
    }))
}
