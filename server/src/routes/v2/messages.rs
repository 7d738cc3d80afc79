//! Messages in v2: send (`PUT /v2/rooms/{room_id}/messages/{txn_id}`), edit, delete, react,
//! and history with state (`GET /v2/rooms/{room_id}/messages`).

use axum::extract::State;
use axum::Json;
use chatsync_protocol::v2::{self, EditRequest, ReactionRequest};
use chatsync_protocol::{
    Direction, ErrorBody, SendMessageRequest, HISTORY_DEFAULT_LIMIT, HISTORY_MAX_LIMIT,
};

use super::refused;
use crate::app::{now_rfc3339, ApiJson, ApiPath, ApiQuery, AppState};
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::routes::messages::{clamp_limit, store_send, HistoryParams};
use crate::routes::room_for_member;
use crate::store::{DeleteMessage, EditMessage, HistoryQuery, React};
use crate::validate;

/// Sends a message; the answer is the message in v2 shape, with its `txn_id`. Idempotent per
/// (sender, txn_id), shared with v1's send: a repeat stores nothing and answers the message as
/// it is now.
#[utoipa::path(
    put,
    path = "/v2/rooms/{room_id}/messages/{txn_id}",
    tag = "v2",
    params(
        ("room_id" = String, Path),
        ("txn_id" = String, Path, description = "Client-chosen id that makes the send idempotent"),
    ),
    request_body = SendMessageRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The stored message", body = v2::Message),
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
) -> Result<Json<v2::Message>, ApiError> {
    let outcome = store_send(&state, &caller, room_id, txn_id, request).await?;
    Ok(Json(outcome.message.v2_for(&caller)))
}

/// Replaces a message's parts (its sender only; not a deleted message). Idempotent per (user,
/// txn_id): a repeat changes nothing and answers the message as it is now.
#[utoipa::path(
    put,
    path = "/v2/rooms/{room_id}/messages/{message_id}/edits/{txn_id}",
    tag = "v2",
    params(
        ("room_id" = String, Path),
        ("message_id" = u64, Path, minimum = 0),
        ("txn_id" = String, Path, description = "Client-chosen id that makes the edit idempotent"),
    ),
    request_body = EditRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The message, edited", body = v2::Message),
        (status = 400, description = "Malformed body, no parts", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Not a member, or not the message's sender", body = ErrorBody),
        (status = 404, description = "No such room, or no such message in it", body = ErrorBody),
        (status = 409, description = "The message is deleted", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB or a text part over 16 KiB", body = ErrorBody),
    )
)]
pub async fn edit_message(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    ApiPath((room_id, message_id, txn_id)): ApiPath<(String, u64, String)>,
    ApiJson(request): ApiJson<EditRequest>,
) -> Result<Json<v2::Message>, ApiError> {
    validate::id("txn id", &txn_id)?;
    validate::parts(&request.parts)?;
    room_for_member(&state, &room_id, &caller).await?;
    let edited = state
        .store
        .edit_message(EditMessage {
            room_id,
            message_id,
            user_id: caller.clone(),
            txn_id,
            parts: request.parts,
            now: now_rfc3339(),
        })
        .await?
        .map_err(|r| refused(r, message_id))?;
    Ok(Json(edited.v2_for(&caller)))
}

/// Deletes a message (its sender only): it becomes a tombstone, its place kept. Deleting again is
/// a no-op. Idempotent per (user, txn_id).
#[utoipa::path(
    put,
    path = "/v2/rooms/{room_id}/messages/{message_id}/deletion/{txn_id}",
    tag = "v2",
    params(
        ("room_id" = String, Path),
        ("message_id" = u64, Path, minimum = 0),
        ("txn_id" = String, Path, description = "Client-chosen id that makes the deletion idempotent"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The tombstone", body = v2::Message),
        (status = 400, description = "Malformed path", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Not a member, or not the message's sender", body = ErrorBody),
        (status = 404, description = "No such room, or no such message in it", body = ErrorBody),
    )
)]
pub async fn delete_message(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    ApiPath((room_id, message_id, txn_id)): ApiPath<(String, u64, String)>,
) -> Result<Json<v2::Message>, ApiError> {
    validate::id("txn id", &txn_id)?;
    room_for_member(&state, &room_id, &caller).await?;
    let tombstone = state
        .store
        .delete_message(DeleteMessage {
            room_id,
            message_id,
            user_id: caller.clone(),
            txn_id,
            now: now_rfc3339(),
        })
        .await?
        .map_err(|r| refused(r, message_id))?;
    Ok(Json(tombstone.v2_for(&caller)))
}

/// Adds (`on: true`) or removes the caller's reaction with `key` (any member; not on a deleted
/// message). Already so is a no-op. Idempotent per (user, txn_id).
#[utoipa::path(
    put,
    path = "/v2/rooms/{room_id}/messages/{message_id}/reactions/{txn_id}",
    tag = "v2",
    params(
        ("room_id" = String, Path),
        ("message_id" = u64, Path, minimum = 0),
        ("txn_id" = String, Path, description = "Client-chosen id that makes the reaction idempotent"),
    ),
    request_body = ReactionRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The message with its reactions", body = v2::Message),
        (status = 400, description = "Malformed body, a key of 0 or over 32 bytes, or with white space or control characters", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Not a member", body = ErrorBody),
        (status = 404, description = "No such room, or no such message in it", body = ErrorBody),
        (status = 409, description = "The message is deleted, or the caller has 20 keys on it", body = ErrorBody),
    )
)]
pub async fn react(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    ApiPath((room_id, message_id, txn_id)): ApiPath<(String, u64, String)>,
    ApiJson(request): ApiJson<ReactionRequest>,
) -> Result<Json<v2::Message>, ApiError> {
    validate::id("txn id", &txn_id)?;
    v2::check_reaction_key(&request.key).map_err(|e| ApiError::bad_request(e.to_string()))?;
    room_for_member(&state, &room_id, &caller).await?;
    let message = state
        .store
        .react(React {
            room_id,
            message_id,
            user_id: caller.clone(),
            txn_id,
            key: request.key,
            on: request.on,
        })
        .await?
        .map_err(|r| refused(r, message_id))?;
    Ok(Json(message.v2_for(&caller)))
}

/// A page of a room's history with each message's state, tombstones included: v1's paging
/// (`initial_id`, `direction`, `limit`, an exact `has_more`).
#[utoipa::path(
    get,
    path = "/v2/rooms/{room_id}/messages",
    tag = "v2",
    params(("room_id" = String, Path), HistoryParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page", body = v2::HistoryResponse),
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
) -> Result<Json<v2::HistoryResponse>, ApiError> {
    let limit = clamp_limit(params.limit, HISTORY_DEFAULT_LIMIT, HISTORY_MAX_LIMIT)?;
    room_for_member(&state, &room_id, &caller).await?;
    let query = HistoryQuery {
        initial_id: params.initial_id,
        direction: params.direction.unwrap_or(Direction::Older),
        limit,
    };
    let page = state.db(move |s| s.history_v2(&room_id, query)).await?;
    Ok(Json(v2::HistoryResponse {
        messages: page.messages.iter().map(|m| m.v2_for(&caller)).collect(),
        has_more: page.has_more,
    }))
}
