//! `GET /messages`: the route of the original tutorial's server, kept so that app code written
//! against it keeps working. It walks forward: the first `limit` messages after `initial_id`,
//! listed newest first.

use axum::extract::State;
use axum::Json;
use chatsync_protocol::{CompatMessages, ErrorBody, COMPAT_DEFAULT_LIMIT, HISTORY_MAX_LIMIT};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::app::{ApiQuery, AppState};
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::routes::messages::clamp_limit;
use crate::routes::room_for_member;

/// Query of the compatibility route.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CompatParams {
    /// The room to read.
    pub room_id: String,
    /// Exclusive lower bound (default: from the first message).
    pub initial_id: Option<u64>,
    /// How many: default 10, at most 100 (clamped), at least 1.
    #[param(minimum = 1)]
    pub limit: Option<u32>,
}

/// The first `limit` messages after `initial_id`, newest first.
#[utoipa::path(
    get,
    path = "/messages",
    tag = "compat",
    params(CompatParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Messages, newest first", body = CompatMessages),
        (status = 400, description = "Malformed query", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Not a member", body = ErrorBody),
        (status = 404, description = "No such room", body = ErrorBody),
    )
)]
pub async fn messages(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    ApiQuery(params): ApiQuery<CompatParams>,
) -> Result<Json<CompatMessages>, ApiError> {
    let limit = clamp_limit(params.limit, COMPAT_DEFAULT_LIMIT, HISTORY_MAX_LIMIT)?;
    room_for_member(&state, &params.room_id, &caller).await?;
    let after = params.initial_id.unwrap_or(0);
    let room_id = params.room_id;
    let mut messages = state
        .db(move |s| s.messages_after(&room_id, after, limit))
        .await?;
    messages.reverse();
    Ok(Json(CompatMessages { messages }))
}
