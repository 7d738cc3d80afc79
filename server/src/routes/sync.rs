//! `GET /v1/sync`: everything new in all of the caller's rooms since a token, in one request, with
//! long-poll. A request that finds nothing parks on the caller's [`crate::notify`] channel until a
//! message lands in one of their rooms, a room is created with them in it, the timeout passes, or
//! the server shuts down (then it answers at once with what it has).
//!
//! An incremental sync whose token the change feed still covers (the common case: a device that
//! follows `next_batch`, and every woken long-poll) is answered from memory, with the answer the
//! database would give at the feed's head; an initial sync or an old token reads the database.

use axum::extract::State;
use axum::Json;
use chatsync_protocol::{
    ErrorBody, SyncResponse, SYNC_DEFAULT_LIMIT, SYNC_MAX_LIMIT, SYNC_MAX_TIMEOUT_MS,
};
use serde::Deserialize;
use tokio::time::{Duration, Instant};
use utoipa::IntoParams;

use crate::app::{ApiQuery, AppState};
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::notify::Wake;
use crate::routes::messages::clamp_limit;
use crate::sync_token::SyncPosition;

/// Query of a sync request.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SyncParams {
    /// `next_batch` of the previous answer; absent for an initial sync.
    pub since: Option<String>,
    /// How long to hold the request when nothing is new: 0 (default) to 30000 ms, larger values
    /// are clamped. Ignored without `since`.
    pub timeout_ms: Option<u64>,
    /// Most messages per room: default 50, at most 100 (clamped), at least 1.
    pub limit: Option<u32>,
}

/// What is new in the caller's rooms since `since`, holding the request up to `timeout_ms` when
/// nothing is.
#[utoipa::path(
    get,
    path = "/v1/sync",
    tag = "sync",
    params(SyncParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "New messages per room and the next token", body = SyncResponse),
        (status = 400, description = "Malformed query or sync token", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
    )
)]
pub async fn sync(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    ApiQuery(params): ApiQuery<SyncParams>,
) -> Result<Json<SyncResponse>, ApiError> {
    let since = params
        .since
        .as_deref()
        .map(|s| {
            s.parse::<SyncPosition>()
                .map_err(|_| ApiError::bad_request("malformed sync token (since)"))
        })
        .transpose()?;
    let limit = clamp_limit(params.limit, SYNC_DEFAULT_LIMIT, SYNC_MAX_LIMIT)?;
    let timeout = Duration::from_millis(params.timeout_ms.unwrap_or(0).min(SYNC_MAX_TIMEOUT_MS));
    let deadline = Instant::now() + timeout;
    // Subscribe before the first query so a message stored in between still wakes us.
    let mut subscription =
        (since.is_some() && !timeout.is_zero()).then(|| state.notifier.subscribe(&caller));
    loop {
        let from_feed = since.and_then(|since| state.notifier.answer(&caller, since, limit));
        let batch = match from_feed {
            Some(batch) => batch,
            None => {
                let user = caller.clone();
                state.db(move |s| s.sync(&user, since, limit)).await?
            }
        };
        if let Some(since) = since {
            if since.message_id > batch.position.message_id
                || since.membership_seq > batch.position.membership_seq
            {
                return Err(ApiError::bad_request(
                    "sync token is ahead of this server (was its database replaced?)",
                ));
            }
        }
        let answer = Json(SyncResponse {
            next_batch: batch.position.to_string(),
            rooms: batch.rooms,
        });
        let Some(waiter) = subscription.as_mut() else {
            return Ok(answer);
        };
        if !answer.rooms.is_empty() {
            return Ok(answer);
        }
        tracing::debug!(user = %caller, "long-poll parked");
        match tokio::time::timeout_at(deadline, waiter.wait()).await {
            Ok(Wake::Changed) => continue,
            Ok(Wake::Shutdown) | Err(_) => return Ok(answer),
        }
    }
}
