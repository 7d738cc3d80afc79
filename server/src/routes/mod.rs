//! The route handlers, one module per resource, and protocol v2's under [`v2`]. Each handler
//! carries its `#[utoipa::path]` description, which is what the OpenAPI document is generated
//! from.

pub mod compat;
pub mod health;
pub mod messages;
pub mod openapi;
pub mod rooms;
pub mod sync;
pub mod token;
pub mod users;
pub mod v2;

use std::sync::Arc;

use chatsync_protocol::Room;

use crate::app::AppState;
use crate::error::ApiError;

/// Loads a room and checks that `user_id` is a member: 404 if it does not exist, 403 if the caller
/// is not in it. Every room route goes through here, which is how membership is enforced. Rooms
/// never change once created, so a room in the store's memory needs no query.
pub(crate) async fn room_for_member(
    state: &AppState,
    room_id: &str,
    user_id: &str,
) -> Result<Arc<Room>, ApiError> {
    crate::validate::id("room id", room_id)?;
    let room = match state.store.cached_room(room_id) {
        Some(room) => room,
        None => {
            let id = room_id.to_owned();
            state
                .db(move |s| s.room(&id))
                .await?
                .ok_or_else(|| ApiError::not_found(format!("no room {room_id}")))?
        }
    };
    if room.member_ids.iter().any(|m| m == user_id) {
        Ok(room)
    } else {
        Err(ApiError::forbidden("you are not a member of this room"))
    }
}
