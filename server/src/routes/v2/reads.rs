//! Who read and who types: read receipts (`PUT /v2/rooms/{room_id}/receipt/{txn_id}`) and typing
//! notices (`PUT /v2/rooms/{room_id}/typing`).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chatsync_protocol::v2::{ReceiptRequest, ReceiptResponse, TypingRequest};
use chatsync_protocol::ErrorBody;

use crate::app::{ApiJson, ApiPath, AppState};
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::routes::room_for_member;
use crate::store::{ReadReceipt, Refusal, TypingNotice};
use crate::validate;

/// Moves the caller's read-up-to in the room forward to `message_id` (a message of this room);
/// an older one changes nothing. Answers the read-up-to now and the caller's unread count.
/// Idempotent per (user, txn_id).
#[utoipa::path(
    put,
    path = "/v2/rooms/{room_id}/receipt/{txn_id}",
    tag = "v2",
    params(
        ("room_id" = String, Path),
        ("txn_id" = String, Path, description = "Client-chosen id that makes the receipt idempotent"),
    ),
    request_body = ReceiptRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The read-up-to now and the unread count", body = ReceiptResponse),
        (status = 400, description = "Malformed body, or not a message of this room", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Not a member", body = ErrorBody),
        (status = 404, description = "No such room", body = ErrorBody),
    )
)]
pub async fn receipt(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    ApiPath((room_id, txn_id)): ApiPath<(String, String)>,
    ApiJson(request): ApiJson<ReceiptRequest>,
) -> Result<Json<ReceiptResponse>, ApiError> {
    validate::id("txn id", &txn_id)?;
    room_for_member(&state, &room_id, &caller).await?;
    let read = state
        .store
        .read_receipt(ReadReceipt {
            room_id,
            user_id: caller,
            txn_id,
            message_id: request.message_id,
        })
        .await?
        .map_err(|refusal| match refusal {
            Refusal::NoSuchMessage => ApiError::bad_request(format!(
                "message_id {} is not a message of this room",
                request.message_id
            )),
            other => {
                tracing::error!(?other, "a receipt was refused for a reason it cannot have");
                ApiError::internal()
            }
        })?;
    Ok(Json(ReceiptResponse {
        message_id: read.read_upto,
        unread: read.unread,
    }))
}

/// Tells the room's members the caller is (`typing: true`) or stopped typing. Ephemeral: never
/// stored, it ends by itself 6 s after the last notice. At most one notice per second per user
/// and room (429 with `Retry-After`), except a stop that ends a typing.
#[utoipa::path(
    put,
    path = "/v2/rooms/{room_id}/typing",
    tag = "v2",
    params(("room_id" = String, Path)),
    request_body = TypingRequest,
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Noted"),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Not a member", body = ErrorBody),
        (status = 404, description = "No such room", body = ErrorBody),
        (status = 429, description = "Another notice less than a second ago (Retry-After)", body = ErrorBody),
    )
)]
pub async fn typing(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    ApiPath(room_id): ApiPath<String>,
    ApiJson(request): ApiJson<TypingRequest>,
) -> Result<StatusCode, ApiError> {
    let room = room_for_member(&state, &room_id, &caller).await?;
    let members: Arc<[String]> = room.member_ids.clone().into();
    let now = tokio::time::Instant::now();
    let accepted = state
        .typing
        .notice(&room_id, &members, &caller, request.typing, now)
        .map_err(|limited| {
            let secs = limited.retry_after.as_millis().div_ceil(1000).max(1);
            ApiError::too_many_requests(
                "one typing notice per second per room",
                u64::try_from(secs).unwrap_or(1),
            )
        })?;
    // Other instances on the same database (PostgreSQL) take it too.
    state.store.publish_typing(TypingNotice {
        room_id: room_id.clone(),
        user_id: caller.clone(),
        typing: request.typing,
    });
    crate::typing::follow_up(
        &state.typing,
        &state.notifier,
        accepted,
        room_id,
        members,
        caller,
    );
    Ok(StatusCode::NO_CONTENT)
}
