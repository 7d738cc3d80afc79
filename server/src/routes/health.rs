//! `GET`/`HEAD /health`: the target of the clients' connectivity probe. No auth, no database work,
//! so it answers even when the database is slow.

/// Liveness check.
#[utoipa::path(
    method(get, head),
    path = "/health",
    tag = "health",
    responses((status = 200, description = "The server is up", body = String, content_type = "text/plain"))
)]
pub async fn health() -> &'static str {
    "ok"
}
