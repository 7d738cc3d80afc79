//! `GET /v2/sync`: every change in the caller's rooms after a position of the change stream, in
//! one bounded answer, with long-poll. It holds like v1's (crate::routes::sync::hold) and wakes
//! on any commit in the caller's rooms and on typing changes there.
//!
//! An incremental sync whose position the feed still covers is answered from memory
//! ([`crate::feed::Feed::render_v2`]); the feed may first ask for the caller's read states in a
//! few rooms (read from the database once, then kept exact by later commits). An initial sync,
//! an old position, or a feed that cannot tell reads the database.

use axum::extract::State;
use chatsync_protocol::v2::SyncResponse;
use chatsync_protocol::{ErrorBody, SYNC_DEFAULT_LIMIT, SYNC_MAX_LIMIT, SYNC_MAX_TIMEOUT_MS};
use tokio::time::Duration;

use crate::app::{ApiQuery, AppState};
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::notify::Miss;
use crate::routes::messages::clamp_limit;
use crate::routes::sync::{hold, Answer, SyncParams};
use crate::sync_token::StreamToken;
use crate::typing::Changed;

/// Every change in the caller's rooms after `since` (new messages, the current state of older
/// messages that changed, receipts that moved, unread counts, who types), bounded; holding the
/// request up to `timeout_ms` when there is none.
#[utoipa::path(
    get,
    path = "/v2/sync",
    tag = "v2",
    params(SyncParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Changes per room and the next token", body = SyncResponse),
        (status = 400, description = "Malformed query, or a sync token that is not a v2 token of this server", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
    )
)]
pub async fn sync(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    ApiQuery(params): ApiQuery<SyncParams>,
) -> Result<Answer<SyncResponse>, ApiError> {
    let since = params
        .since
        .as_deref()
        .map(|s| {
            s.parse::<StreamToken>()
                .map_err(|_| ApiError::bad_request("malformed sync token (since): not a v2 token"))
        })
        .transpose()?;
    let limit = clamp_limit(params.limit, SYNC_DEFAULT_LIMIT, SYNC_MAX_LIMIT)?;
    let timeout = Duration::from_millis(params.timeout_ms.unwrap_or(0).min(SYNC_MAX_TIMEOUT_MS));
    hold(&state, &caller, since.is_some(), timeout, || {
        look(&state, &caller, since, limit)
    })
    .await
}

/// One look: from the feed when it covers `since`, else the database.
async fn look(
    state: &AppState,
    caller: &str,
    since: Option<StreamToken>,
    limit: u32,
) -> Result<Answer<SyncResponse>, ApiError> {
    let typing = &state.typing;
    let typing_in = |room: &str| typing.typing_in(room, caller);
    let Some(since) = since else {
        let mark = typing.mark();
        let user = caller.to_owned();
        let batch = state
            .db(move |s| s.sync_v2(&user, None, limit, &[]))
            .await?;
        let next = StreamToken {
            pos: batch.pos,
            typing: mark,
        };
        return Ok(Answer::Batch(batch.into_response(
            caller,
            next.to_string(),
            typing_in,
        )));
    };
    // The rooms where someone's typing changed after the token's mark (all the caller's rooms
    // when the mark is older than the registry remembers).
    let (mark, changed) = typing.changed_since(caller, since.typing);
    let also: Vec<String> = match changed {
        Changed::Rooms(rooms) => rooms,
        Changed::All => {
            let user = caller.to_owned();
            let rooms = state.db(move |s| s.rooms_of(&user)).await?;
            rooms.into_iter().map(|r| r.id).collect()
        }
    };
    let token = |pos: u64| StreamToken { pos, typing: mark }.to_string();
    for attempt in 0..2 {
        match state
            .notifier
            .render_v2(caller, since.pos, limit, &also, token, typing_in)
        {
            Ok(rendered) => return Ok(Answer::Rendered(rendered)),
            // The caller's read state in a few rooms: read once, kept by the feed from then on.
            Err(Miss::Reads(rooms)) if attempt == 0 => {
                let user = caller.to_owned();
                let (at, states) = state.db(move |s| s.read_states(&user, &rooms)).await?;
                state.notifier.fill_reads(caller, at, states);
            }
            Err(_) => break,
        }
    }
    let user = caller.to_owned();
    let rooms = also.clone();
    let batch = state
        .db(move |s| s.sync_v2(&user, Some(since.pos), limit, &rooms))
        .await?;
    if batch.pos < since.pos {
        return Err(ApiError::bad_request(
            "sync token is ahead of this server (was its database replaced?)",
        ));
    }
    let next = token(batch.pos);
    Ok(Answer::Batch(batch.into_response(caller, next, typing_in)))
}
