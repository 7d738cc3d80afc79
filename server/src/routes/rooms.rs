//! Rooms: create (`POST /v1/rooms`), the one-to-one room of two users (`POST /v1/rooms/direct`),
//! list the caller's rooms (`GET /v1/rooms`), read one (`GET /v1/rooms/{room_id}`). Creating a
//! room wakes its members' parked long-polls (through the store's commit report), since a joined
//! room is news for their sync.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chatsync_protocol::{CreateRoomRequest, DirectRoomRequest, ErrorBody, Room, RoomList};

use crate::app::{now_rfc3339, ApiJson, ApiPath, AppState};
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::routes::room_for_member;
use crate::validate;

/// Creates a room; the caller is always a member.
#[utoipa::path(
    post,
    path = "/v1/rooms",
    tag = "rooms",
    request_body = CreateRoomRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The new room", body = Room),
        (status = 400, description = "Malformed body or member id", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
    )
)]
pub async fn create_room(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    ApiJson(request): ApiJson<CreateRoomRequest>,
) -> Result<(StatusCode, Json<Room>), ApiError> {
    if let Some(name) = &request.name {
        validate::name("name", name)?;
    }
    if request.member_ids.len() >= validate::MAX_ROOM_MEMBERS {
        return Err(ApiError::bad_request(format!(
            "a room has at most {} members",
            validate::MAX_ROOM_MEMBERS
        )));
    }
    for member in &request.member_ids {
        validate::id("member id", member)?;
    }
    let mut members = request.member_ids;
    members.push(caller);
    members.sort();
    members.dedup();
    let room = state
        .store
        .create_room(request.name, members, now_rfc3339())
        .await?;
    Ok((StatusCode::CREATED, Json(room)))
}

/// Gets or creates the one-to-one room of the caller and `user_id` (the same room whoever asks).
#[utoipa::path(
    post,
    path = "/v1/rooms/direct",
    tag = "rooms",
    request_body = DirectRoomRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The one-to-one room", body = Room),
        (status = 400, description = "Malformed body, or yourself", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
    )
)]
pub async fn direct_room(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    ApiJson(request): ApiJson<DirectRoomRequest>,
) -> Result<Json<Room>, ApiError> {
    validate::id("user_id", &request.user_id)?;
    if request.user_id == caller {
        return Err(ApiError::bad_request("a direct room needs another user"));
    }
    let (room, _created) = state
        .store
        .direct_room(caller, request.user_id, now_rfc3339())
        .await?;
    Ok(Json(room))
}

/// The caller's rooms, oldest membership first.
#[utoipa::path(
    get,
    path = "/v1/rooms",
    tag = "rooms",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's rooms", body = RoomList),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
    )
)]
pub async fn list_rooms(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
) -> Result<Json<RoomList>, ApiError> {
    let rooms = state.db(move |s| s.rooms_of(&caller)).await?;
    Ok(Json(RoomList { rooms }))
}

/// One room the caller is a member of.
#[utoipa::path(
    get,
    path = "/v1/rooms/{room_id}",
    tag = "rooms",
    params(("room_id" = String, Path)),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The room", body = Room),
        (status = 400, description = "Malformed room id", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Not a member", body = ErrorBody),
        (status = 404, description = "No such room", body = ErrorBody),
    )
)]
pub async fn get_room(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    ApiPath(room_id): ApiPath<String>,
) -> Result<Json<Room>, ApiError> {
    room_for_member(&state, &room_id, &caller)
        .await
        .map(|room| Json(Room::clone(&room)))
}
