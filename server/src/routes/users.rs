//! `PUT`/`GET /v1/users/{user_id}`: profiles. A user may only write their own.

use axum::extract::State;
use axum::Json;
use chatsync_protocol::{ErrorBody, PutUserRequest, User};

use crate::app::{ApiJson, ApiPath, AppState};
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::validate;

/// Creates or replaces the caller's own profile.
#[utoipa::path(
    put,
    path = "/v1/users/{user_id}",
    tag = "users",
    params(("user_id" = String, Path, description = "Must be the caller")),
    request_body = PutUserRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The stored profile", body = User),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Not yourself", body = ErrorBody),
    )
)]
pub async fn put_user(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    ApiPath(user_id): ApiPath<String>,
    ApiJson(request): ApiJson<PutUserRequest>,
) -> Result<Json<User>, ApiError> {
    validate::id("user id", &user_id)?;
    if user_id != caller {
        return Err(ApiError::forbidden("you can only change your own profile"));
    }
    validate::name("name", &request.name)?;
    if let Some(url) = &request.avatar_url {
        validate::name("avatar_url", url)?;
    }
    let user = User {
        id: user_id,
        name: request.name,
        avatar_url: request.avatar_url,
    };
    let stored = state.store.put_user(user).await?;
    Ok(Json(stored))
}

/// A user's profile.
#[utoipa::path(
    get,
    path = "/v1/users/{user_id}",
    tag = "users",
    params(("user_id" = String, Path)),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The profile", body = User),
        (status = 400, description = "Malformed user id", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
    )
)]
pub async fn get_user(
    State(state): State<AppState>,
    _caller: AuthUser,
    ApiPath(user_id): ApiPath<String>,
) -> Result<Json<User>, ApiError> {
    validate::id("user id", &user_id)?;
    let id = user_id.clone();
    state
        .db(move |s| s.user(&id))
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no user {user_id}")))
}
