//! `GET /v1/sync`: everything new in all of the caller's rooms since a token, in one request, with
//! long-poll. A request that finds nothing parks on the caller's [`crate::notify`] channel until a
//! message lands in one of their rooms, a room is created with them in it, the timeout passes, or
//! the server shuts down (then it answers at once with what it has).
//!
//! An incremental sync whose token the change feed still covers (the common case: a device that
//! follows `next_batch`, and every woken long-poll) is answered from memory, with the answer the
//! database would give at the feed's head; an initial sync or an old token reads the database.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
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
use crate::notify::{Rendered, Wake};
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
    #[param(minimum = 1)]
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
) -> Result<Answer, ApiError> {
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
    hold(&state, &caller, since.is_some(), timeout, || {
        look(&state, &caller, since, limit)
    })
    .await
}

/// An answer that may say nothing new.
pub(crate) trait News {
    /// Nothing new in it: a long-poll holds on.
    fn is_empty(&self) -> bool;
}

/// The long-poll of both syncs: looks with `look`, and while the answer is empty (and the
/// request is an incremental one with a `timeout`), holds until a change for `caller` or the
/// timeout, then looks again.
pub(crate) async fn hold<A, F, Fut>(
    state: &AppState,
    caller: &str,
    incremental: bool,
    timeout: Duration,
    mut look: F,
) -> Result<A, ApiError>
where
    A: News,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<A, ApiError>>,
{
    let deadline = Instant::now() + timeout;
    // Subscribe before the first look so a message stored in between still wakes us.
    let mut subscription =
        (incremental && !timeout.is_zero()).then(|| state.notifier.subscribe(caller));
    // A long-poll answers on the notifier's pace (see crate::notify, Pacing): one that finds news
    // between two rounds waits for the next round (at most ~100 ms), so live pollers answer
    // once per round, not once per commit. Once held or woken, it answers.
    let mut paced = false;
    loop {
        let answer = look().await?;
        let Some(waiter) = subscription.as_mut() else {
            return Ok(answer);
        };
        if !answer.is_empty() {
            match state.notifier.next_round() {
                Some(round) if !paced && round < deadline => {
                    paced = true;
                    tokio::select! {
                        _ = tokio::time::sleep_until(round) => continue,
                        // Shutting down: answer now with what there is.
                        Wake::Shutdown = waiter.shutdown() => return Ok(answer),
                    }
                }
                _ => return Ok(answer),
            }
        }
        tracing::debug!(user = %caller, "long-poll parked");
        match tokio::time::timeout_at(deadline, waiter.wait()).await {
            Ok(Wake::Changed) => {
                paced = true;
                continue;
            }
            Ok(Wake::Shutdown) | Err(_) => return Ok(answer),
        }
    }
}

/// One look for news: from the feed when it covers `since` (already rendered), else the database.
async fn look(
    state: &AppState,
    caller: &str,
    since: Option<SyncPosition>,
    limit: u32,
) -> Result<Answer, ApiError> {
    if let Some(rendered) = since.and_then(|since| state.notifier.render(caller, since, limit)) {
        return Ok(Answer::Rendered(rendered));
    }
    let user = caller.to_owned();
    let batch = state.db(move |s| s.sync(&user, since, limit)).await?;
    if let Some(since) = since {
        if since.message_id > batch.position.message_id
            || since.membership_seq > batch.position.membership_seq
        {
            return Err(ApiError::bad_request(
                "sync token is ahead of this server (was its database replaced?)",
            ));
        }
    }
    Ok(Answer::Batch(SyncResponse {
        next_batch: batch.position.to_string(),
        rooms: batch.rooms,
    }))
}

/// A sync answer: rendered by the feed, or read from the database. Both are a
/// [`SyncResponse`] (v1) or a `v2::SyncResponse` on the wire, byte for byte the same for the same
/// content.
#[derive(Debug)]
pub enum Answer<T = SyncResponse> {
    /// The JSON body, from [`crate::feed::Feed::render`] or [`crate::feed::Feed::render_v2`].
    Rendered(Rendered),
    /// From the database.
    Batch(T),
}

impl News for SyncResponse {
    fn is_empty(&self) -> bool {
        self.rooms.is_empty()
    }
}

impl News for chatsync_protocol::v2::SyncResponse {
    fn is_empty(&self) -> bool {
        self.rooms.is_empty()
    }
}

impl<T: News> News for Answer<T> {
    fn is_empty(&self) -> bool {
        match self {
            Answer::Rendered(r) => r.empty,
            Answer::Batch(b) => b.is_empty(),
        }
    }
}

impl<T: serde::Serialize> IntoResponse for Answer<T> {
    fn into_response(self) -> Response {
        match self {
            Answer::Rendered(r) => {
                ([(header::CONTENT_TYPE, "application/json")], r.body).into_response()
            }
            Answer::Batch(b) => Json(b).into_response(),
        }
    }
}
