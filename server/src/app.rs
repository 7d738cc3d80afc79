//! The HTTP application: shared state, the router with its layers (body limit, body deadline,
//! request log, JSON fallbacks for 404/405), and the extractors that turn every rejection into the
//! protocol's error body. The router is built with utoipa-axum, so the OpenAPI document is generated from the same
//! route definitions that serve requests and cannot drift from them.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde::de::DeserializeOwned;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::TokenKeys;
use crate::clock::Clock;
use crate::error::ApiError;
use crate::notify::Notifier;
use crate::routes;
use crate::store::{Store, StoreError};
use crate::AuthMode;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub store: Arc<dyn Store>,
    /// Parked long-polls.
    pub notifier: Arc<Notifier>,
    /// Who is typing where (v2; in memory only).
    pub typing: Arc<crate::typing::Typing>,
    /// Token signing and checking.
    pub keys: Arc<TokenKeys>,
    /// Whether `POST /v1/token` is on.
    pub auth_mode: AuthMode,
    /// The OpenAPI document, rendered once at start.
    pub openapi_json: Arc<String>,
    /// Reads running on the blocking pool at once: no more than the store has connections for,
    /// so a burst of requests queues here instead of parking hundreds of blocking threads on a
    /// connection pool (tokio's pool grows to 512 threads).
    pub reads: Arc<tokio::sync::Semaphore>,
}

impl AppState {
    /// Runs a storage read on the blocking pool (SQLite calls block), at most
    /// [`Store::read_parallelism`] at a time, and maps its error.
    pub async fn db<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        F: FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let _permit = self
            .reads
            .acquire()
            .await
            .map_err(|_| ApiError::unavailable("the server is shutting down"))?;
        let store = Arc::clone(&self.store);
        match tokio::task::spawn_blocking(move || f(&*store)).await {
            Ok(result) => result.map_err(ApiError::from),
            Err(e) => {
                tracing::error!(error = %e, "storage task failed");
                Err(ApiError::internal())
            }
        }
    }
}

/// The OpenAPI document's fixed parts; the paths come from the router.
#[derive(OpenApi)]
#[openapi(
    info(title = "chatsync sync protocol", version = "2", description = "Sync protocols v1 and v2 of the chatsync reference server. See docs/protocol.md."),
    modifiers(&BearerAuth),
    components(schemas(chatsync_protocol::ErrorBody, chatsync_protocol::Direction))
)]
struct ApiDoc;

/// Adds the bearer security scheme.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.bearer_format = Some("JWT".into());
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// All routes, with their OpenAPI descriptions, not yet bound to a state.
fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(routes::health::health))
        .routes(routes!(routes::openapi::openapi_json))
        .routes(routes!(routes::token::issue_token))
        .routes(routes!(routes::users::put_user, routes::users::get_user))
        .routes(routes!(
            routes::rooms::create_room,
            routes::rooms::list_rooms
        ))
        .routes(routes!(routes::rooms::direct_room))
        .routes(routes!(routes::rooms::get_room))
        .routes(routes!(routes::messages::send_message))
        .routes(routes!(routes::messages::history))
        .routes(routes!(routes::sync::sync))
        .routes(routes!(routes::compat::messages))
        .routes(routes!(routes::v2::messages::send_message))
        .routes(routes!(routes::v2::messages::edit_message))
        .routes(routes!(routes::v2::messages::delete_message))
        .routes(routes!(routes::v2::messages::react))
        .routes(routes!(routes::v2::messages::history))
        .routes(routes!(routes::v2::reads::receipt))
        .routes(routes!(routes::v2::reads::typing))
        .routes(routes!(routes::v2::sync::sync))
}

/// The OpenAPI document of protocols v1 and v2 as this server serves it.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = api_router().into_openapi();
    state_id_rules(&mut doc);
    doc
}

/// States the id rules ([`chatsync_protocol::ID_PATTERN`], 1 to
/// [`chatsync_protocol::MAX_ID_BYTES`] bytes) once, as the `Id` schema, and points every id a
/// client sends at it: the `room_id`, `user_id` and `txn_id` parameters and the ids of the request
/// bodies. Done on the finished document because the paths only exist once the router is built.
fn state_id_rules(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::schema::{ArrayItems, ObjectBuilder, Schema, Type};
    use utoipa::openapi::{Ref, RefOr};

    let id = ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        // maxLength counts characters; the limit is in bytes of UTF-8, so non-ASCII ids are shorter.
        .max_length(Some(chatsync_protocol::MAX_ID_BYTES))
        .pattern(Some(chatsync_protocol::ID_PATTERN))
        .description(Some(format!(
            "A user, room or transaction id: 1 to {} bytes of UTF-8, without control characters, white space or '/' (400 otherwise).",
            chatsync_protocol::MAX_ID_BYTES
        )))
        .build();
    let components = doc.components.get_or_insert_with(Default::default);
    components
        .schemas
        .insert("Id".to_owned(), RefOr::T(Schema::Object(id)));
    let id_ref = || RefOr::Ref(Ref::from_schema_name("Id"));
    for item in doc.paths.paths.values_mut() {
        for operation in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.head,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            for parameter in operation.parameters.iter_mut().flatten() {
                if let RefOr::T(parameter) = parameter {
                    if matches!(parameter.name.as_str(), "room_id" | "user_id" | "txn_id") {
                        parameter.schema = Some(id_ref());
                    }
                }
            }
        }
    }
    for (schema, field) in [
        ("TokenRequest", "user_id"),
        ("DirectRoomRequest", "user_id"),
        ("CreateRoomRequest", "member_ids"),
    ] {
        let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(schema) else {
            continue;
        };
        match object.properties.get_mut(field) {
            Some(RefOr::T(Schema::Array(array))) => {
                array.items = ArrayItems::RefOrSchema(Box::new(id_ref()));
            }
            Some(property) => *property = id_ref(),
            None => {}
        }
    }
}

/// The complete application for these parts. `body_timeout` bounds the time from a request's
/// head to the end of its body, on `clock`.
pub(crate) fn router(
    store: Arc<dyn Store>,
    notifier: Arc<Notifier>,
    typing: Arc<crate::typing::Typing>,
    keys: Arc<TokenKeys>,
    auth_mode: AuthMode,
    body_timeout: Duration,
    clock: Clock,
) -> Router {
    let (router, mut doc) = api_router().split_for_parts();
    state_id_rules(&mut doc);
    let openapi_json = Arc::new(
        doc.to_pretty_json()
            .expect("the OpenAPI document serializes"),
    );
    let reads = Arc::new(tokio::sync::Semaphore::new(store.read_parallelism().max(1)));
    let state = AppState {
        store,
        notifier,
        typing,
        keys,
        auth_mode,
        openapi_json,
        reads,
    };
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(
            chatsync_protocol::MAX_BODY_BYTES,
        ))
        .layer(axum::middleware::from_fn_with_state(
            BodyDeadline {
                timeout: body_timeout,
                clock,
            },
            body_deadline,
        ))
        .layer(axum::middleware::from_fn(log_request))
        .with_state(state)
}

/// The body timeout and its clock.
#[derive(Clone)]
struct BodyDeadline {
    timeout: Duration,
    clock: Clock,
}

/// Gives a request with a body a deadline for the whole of it, counted from its head: a client that
/// drips its body, or announces a large chunk and stalls, gets a 408 when the deadline passes
/// instead of holding the connection open.
async fn body_deadline(
    axum::extract::State(deadline): axum::extract::State<BodyDeadline>,
    request: Request,
    next: Next,
) -> Response {
    if request.body().is_end_stream() {
        return next.run(request).await;
    }
    let sleep = deadline
        .clock
        .sleep_until(deadline.clock.now() + deadline.timeout);
    let request = request.map(|inner| {
        Body::new(DeadlineBody {
            inner,
            deadline: Box::pin(sleep),
            timeout: deadline.timeout,
        })
    });
    next.run(request).await
}

/// A request body that fails with [`BodyTimeout`] once its deadline passes.
struct DeadlineBody {
    inner: Body,
    deadline: Pin<Box<tokio::time::Sleep>>,
    timeout: Duration,
}

/// The error a body that missed its deadline reports (mapped to a 408).
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {} ms", .0.as_millis())]
pub struct BodyTimeout(Duration);

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, axum::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(axum::Error::new(BodyTimeout(self.timeout))))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// The [`BodyTimeout`] somewhere in an error's chain of sources.
fn body_timeout_in<'e>(error: &'e (dyn std::error::Error + 'static)) -> Option<&'e BodyTimeout> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(timeout) = e.downcast_ref::<BodyTimeout>() {
            return Some(timeout);
        }
        next = e.source();
    }
    None
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed("this route does not support this method")
}

/// One structured log line per request: method, path (never the query or headers, so never a
/// token), status, duration.
async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let elapsed_us = started.elapsed().as_micros() as u64;
    if status >= 500 {
        tracing::warn!(%method, %path, status, elapsed_us, "request failed");
    } else if path == "/health" {
        // The clients' connectivity probe: frequent and uninteresting.
        tracing::debug!(%method, %path, status, elapsed_us, "request");
    } else {
        tracing::info!(%method, %path, status, elapsed_us, "request");
    }
    response
}

/// A JSON request body. Unlike `axum::Json` it ignores the Content-Type and reports every failure
/// (syntax, missing field, wrong type, too large) in the protocol's error shape.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        // A body announced over the limit is refused before reading a byte of it: otherwise a
        // client that announces 10 GB and sends a few bytes holds the request open forever.
        let announced = request
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if announced.is_some_and(|len| len > chatsync_protocol::MAX_BODY_BYTES as u64) {
            return Err(ApiError::payload_too_large(format!(
                "the request body is at most {} bytes",
                chatsync_protocol::MAX_BODY_BYTES
            )));
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::payload_too_large(format!(
                        "the request body is at most {} bytes",
                        chatsync_protocol::MAX_BODY_BYTES
                    ))
                } else if let Some(timeout) = body_timeout_in(&rejection) {
                    ApiError::request_timeout(timeout.to_string())
                } else {
                    ApiError::bad_request(rejection.body_text())
                }
            })?;
        serde_json::from_slice(&bytes)
            .map(ApiJson)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
    }
}

/// Query parameters; a malformed query is a 400 in the protocol's error shape.
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|rejection| ApiError::bad_request(rejection.body_text()))
    }
}

/// Path parameters; a malformed one is a 400 in the protocol's error shape.
#[derive(Debug, Clone)]
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|rejection| ApiError::bad_request(rejection.body_text()))
    }
}

/// Current time as RFC 3339 UTC with milliseconds, the protocol's timestamp format.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

impl IntoResponse for crate::auth::TokenError {
    fn into_response(self) -> Response {
        ApiError::unauthorized(self.to_string()).into_response()
    }
}
