//! Messages of one room: idempotent send (`PUT /v1/rooms/{room_id}/messages/{txn_id}`) and history
//! paging (`GET /v1/rooms/{room_id}/messages`).

use axum::extract::State;
use axum::Json;
use chatsync_protocol::{
    Direction, ErrorBody, HistoryResponse, Message, SendMessageRequest, HISTORY_DEFAULT_LIMIT,
    HISTORY_MAX_LIMIT,
};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::app::{now_rfc3339, ApiJson, ApiPath, ApiQuery, AppState};
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::routes::room_for_member;
use crate::store::{HistoryQuery, NewMessage, SendOutcome};
use crate::validate;

/// Sends a message. Idempotent per (sender, txn_id): a repeat returns the stored message with the
/// same id and stores nothing.
#[utoipa::path(
    put,
    path = "/v1/rooms/{room_id}/messages/{txn_id}",
    tag = "messages",
    params(
        ("room_id" = String, Path),
        ("txn_id" = String, Path, description = "Client-chosen id that makes the send idempotent"),
    ),
    request_body = SendMessageRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The stored message", body = Message),
        (status = 400, description = "Malformed body, no parts", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Not a member", body = ErrorBody),
        (status = 404, description = "No such room", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB or a text part over 16 KiB", body = ErrorBody),
    )
)]
pub async fn send_message(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    ApiPath((room_id, txn_id)): ApiPath<(String, String)>,
    ApiJson(request): ApiJson<SendMessageRequest>,
) -> Result<Json<Message>, ApiError> {
    let outcome = store_send(&state, &caller, room_id, txn_id, request).await?;
    Ok(Json(outcome.message.v1()))
}

/// A send of either protocol version: checked, then stored. Resolves once the commit holding it
/// is durable; the store's commit wakes the long-polls.
pub(crate) async fn store_send(
    state: &AppState,
    caller: &str,
    room_id: String,
    txn_id: String,
    request: SendMessageRequest,
) -> Result<SendOutcome, ApiError> {
    validate::id("txn id", &txn_id)?;
    validate::parts(&request.parts)?;
    room_for_member(state, &room_id, caller).await?;
    let new = NewMessage {
        room_id,
        sender: caller.to_owned(),
        txn_id,
        parts: request.parts,
        now: now_rfc3339(),
    };
    Ok(state.store.send_message(new).await?)
}

/// Query of a history request.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryParams {
    /// Exclusive bound. Without it, `older` starts from the newest message and `newer` from the
    /// oldest.
    pub initial_id: Option<u64>,
    /// `older` (default) or `newer`.
    pub direction: Option<Direction>,
    /// Page size: default 20, at most 100 (larger values are clamped), at least 1.
    #[param(minimum = 1)]
    pub limit: Option<u32>,
}

/// A page of a room's history, ascending by id, with an exact `has_more`.
#[utoipa::path(
    get,
    path = "/v1/rooms/{room_id}/messages",
    tag = "messages",
    params(("room_id" = String, Path), HistoryParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page", body = HistoryResponse),
        (status = 400, description = "Malformed query", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Not a member", body = ErrorBody),
        (status = 404, description = "No such room", body = ErrorBody),
    )
)]
pub async fn history(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    ApiPath(room_id): ApiPath<String>,
    ApiQuery(params): ApiQuery<HistoryParams>,
) -> Result<Json<HistoryResponse>, ApiError> {
    let limit = clamp_limit(params.limit, HISTORY_DEFAULT_LIMIT, HISTORY_MAX_LIMIT)?;
    room_for_member(&state, &room_id, &caller).await?;
    let query = HistoryQuery {
        initial_id: params.initial_id,
        direction: params.direction.unwrap_or(Direction::Older),
        limit,
    };
    let page = state.db(move |s| s.history(&room_id, query)).await?;
    Ok(Json(HistoryResponse {
        messages: page.messages,
        has_more: page.has_more,
    }))
}

/// A `limit` parameter: default when absent, 400 when zero, clamped to `max`.
pub(crate) fn clamp_limit(limit: Option<u32>, default: u32, max: u32) -> Result<u32, ApiError> {
    match limit {
        None => Ok(default),
        Some(0) => Err(ApiError::bad_request("limit must be at least 1")),
        Some(n) => Ok(n.min(max)),
    }
}
