//! Protocol v1 over reqwest (rustls). Every failure is classified here, once: transient
//! (network, 5xx, 408, 429: retry later, with the server's Retry-After when given) or permanent
//! (other 4xx: the server's reason is kept), so the outbox and the sync loop never guess.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chatsync_protocol::{
    v2, DirectRoomRequest, Direction, ErrorBody, Part, PutUserRequest, Room, RoomList,
    SendMessageRequest, TokenRequest, TokenResponse, User, HISTORY_MAX_LIMIT, MAX_BODY_BYTES,
    SYNC_MAX_LIMIT,
};
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::config::{ClientConfig, TokenSource};
use crate::error::Error;
use crate::shutdown::Shutdown;

/// Connect timeout: a phone on a bad network should give up and queue rather than hang.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Timeout of an ordinary request (a long-poll adds its own hold time to this).
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest Retry-After honoured, so a bad header cannot park the outbox for days.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);
/// Largest answer body read, in bytes (16 MiB); a larger one is a `Protocol` error, refused at
/// once when its `Content-Length` says so, else as soon as that many bytes have arrived.
///
/// Why this size: the body is held in memory before it is parsed, and on a phone memory is
/// what gets the app killed, so a broken or hostile server must not choose how much of it we
/// use. The largest legitimate answers are a history page (at most `HISTORY_MAX_LIMIT`, 100,
/// messages) and a sync batch (at most `page_size` messages per room: 50 by default, clamped
/// to `SYNC_MAX_LIMIT`, 100). A message's parts are at most `MAX_BODY_BYTES` (64 KiB, what the
/// server accepts in a send), so 16 MiB is 256 messages of the largest size the protocol
/// allows in one answer, and about 16,000 messages of a typical 1 KiB: far above any real page.
/// The case it does cut off is a sync over several rooms that each bring a full page of
/// maximum-size messages; that answer is refused rather than read (see docs/reliability.md).
pub(crate) const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

// The cap must hold at least one full page of the largest messages the protocol allows.
const _: () = assert!(
    MAX_ANSWER_BYTES >= MAX_BODY_BYTES * SYNC_MAX_LIMIT as usize
        && MAX_ANSWER_BYTES >= MAX_BODY_BYTES * HISTORY_MAX_LIMIT as usize
);

/// A failed request, classified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ApiError {
    /// No answer: connection refused or reset, DNS, timeout. Transient.
    #[error("server unreachable: {0}")]
    Network(String),
    /// An answer that says "later": 5xx, 408, 429. Transient.
    #[error("server busy ({status}): {reason}")]
    Unavailable {
        status: u16,
        retry_after: Option<Duration>,
        reason: String,
    },
    /// 401 that a fresh token did not cure.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// 404.
    #[error("not found: {0}")]
    NotFound(String),
    /// Any other 4xx: permanent, with the server's code and description.
    #[error("rejected ({status} {code}): {reason}")]
    Rejected {
        status: u16,
        code: String,
        reason: String,
    },
    /// The answer is not protocol v1.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The client is shut down; no request was made, or the one in flight was dropped.
    #[error("client is shut down")]
    ShutDown,
    /// The app's token provider had no token.
    #[error("token provider: {0}")]
    Token(crate::error::TokenError),
}

impl ApiError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ApiError::Network(_)
                | ApiError::Unavailable { .. }
                | ApiError::Token(crate::error::TokenError::Offline(_))
        )
    }

    /// Whether the request certainly never reached the server: no connection could be made,
    /// or no token to make it with. (A timeout or a cut connection may have delivered it.)
    pub fn never_left(&self) -> bool {
        match self {
            ApiError::Network(detail) => detail.starts_with(COULD_NOT_CONNECT),
            ApiError::Token(_) => true,
            _ => false,
        }
    }

    /// The server's Retry-After, when it gave one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::Unavailable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// Classifies a non-2xx answer. `retry_after` is the raw header, `body` the raw body.
pub(crate) fn classify(status: u16, retry_after: Option<&str>, body: &str) -> ApiError {
    let parsed: Option<ErrorBody> = serde_json::from_str(body).ok();
    let code = parsed
        .as_ref()
        .map_or_else(|| format!("http_{status}"), |b| b.error.clone());
    let reason = parsed.map_or_else(|| format!("HTTP {status}"), |b| b.error_description);
    match status {
        401 => ApiError::Unauthorized(reason),
        404 => ApiError::NotFound(reason),
        408 | 429 | 500..=599 => ApiError::Unavailable {
            status,
            retry_after: retry_after.and_then(parse_retry_after),
            reason,
        },
        _ => ApiError::Rejected {
            status,
            code,
            reason,
        },
    }
}

/// Retry-After in its delta-seconds form (the HTTP-date form is ignored: no clock agreement).
fn parse_retry_after(value: &str) -> Option<Duration> {
    value
        .trim()
        .parse::<u64>()
        .ok()
        .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER))
}

/// Checks the server URL: https anywhere, plain http only to a loopback host unless allowed.
pub(crate) fn validate_server_url(raw: &str, allow_insecure_http: bool) -> Result<Url, Error> {
    let url =
        Url::parse(raw).map_err(|e| Error::InvalidInput(format!("server_url {raw:?}: {e}")))?;
    match url.scheme() {
        "https" => {}
        "http" => {
            let host = url.host_str().unwrap_or("");
            let loopback = host.eq_ignore_ascii_case("localhost")
                || host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if !loopback && !allow_insecure_http {
                return Err(Error::InvalidInput(format!(
                    "server_url {raw:?} is plain http to a non-loopback host; use https or set allow_insecure_http"
                )));
            }
        }
        other => {
            return Err(Error::InvalidInput(format!(
                "server_url scheme {other:?} is not http or https"
            )))
        }
    }
    if url.cannot_be_a_base() {
        return Err(Error::InvalidInput(format!(
            "server_url {raw:?} cannot be a base URL"
        )));
    }
    Ok(url)
}

/// Redirects followed within one request, at most (same origin only).
const MAX_REDIRECTS: usize = 5;

/// Follows a redirect only to the configured server's own origin (scheme, host and port), so
/// nothing (a message body on a 307, a token) ever goes where the app did not configure, and
/// https is never downgraded. Any other redirect is not followed: its 3xx answer comes back and
/// is a protocol error (the message stays queued).
fn same_origin_redirects(base: &Url) -> reqwest::redirect::Policy {
    let origin = base.origin();
    reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() > MAX_REDIRECTS || attempt.url().origin() != origin {
            attempt.stop()
        } else {
            attempt.follow()
        }
    })
}

/// Told about every request, so the network status follows what real requests see (a real
/// request is the best probe there is) and a refused token is announced once. Passed in when
/// the client is built: the api layer holds no reference back to anything that owns it.
pub(crate) trait RequestObserver: Send + Sync {
    /// After every request: `answered` is true for any HTTP answer, false for a transport
    /// failure.
    fn request_result(&self, answered: bool);
    /// A request was refused (401) and no fresh token could be had.
    fn unauthorized(&self, reason: &str);
    /// A request with a token was accepted.
    fn authorized(&self);
}

/// A protocol v1 client for one user.
pub(crate) struct Api {
    http: reqwest::Client,
    base: Url,
    user_id: String,
    token_source: TokenSource,
    /// The current bearer token; a std Mutex because it is never held across an await.
    token: Mutex<Option<String>>,
    /// Serializes token fetches so a burst of 401s asks the provider once.
    token_fetch: tokio::sync::Mutex<()>,
    /// Told about every request (the network monitor, the events).
    observer: Arc<dyn RequestObserver>,
    /// Every request races the client's shutdown and is dropped when it comes.
    shutdown: Shutdown,
}

impl Api {
    pub fn new(
        config: &ClientConfig,
        observer: Arc<dyn RequestObserver>,
        shutdown: Shutdown,
    ) -> Result<Api, Error> {
        let base = validate_server_url(&config.server_url, config.allow_insecure_http)?;
        let http = reqwest::Client::builder()
            .redirect(same_origin_redirects(&base))
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .pool_max_idle_per_host(2)
            .user_agent(concat!("chatsync-core/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::InvalidInput(format!("cannot build the HTTP client: {e}")))?;
        Ok(Api {
            http,
            base,
            user_id: config.user_id.clone(),
            token_source: config.token.clone(),
            token: Mutex::new(match &config.token {
                TokenSource::Fixed(t) => Some(t.clone()),
                _ => None,
            }),
            token_fetch: tokio::sync::Mutex::new(()),
            observer,
            shutdown,
        })
    }

    fn report(&self, answered: bool) {
        if !self.shutdown.is_triggered() {
            self.observer.request_result(answered);
        }
    }

    /// The HTTP client (shared with the connectivity probe, so connections are pooled).
    pub fn http(&self) -> reqwest::Client {
        self.http.clone()
    }

    /// The base URL with `segments` appended, each percent-encoded.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        {
            // `validate_server_url` refused cannot-be-a-base URLs.
            let mut path = url.path_segments_mut().expect("base URL");
            path.pop_if_empty();
            path.extend(segments);
        }
        url
    }

    async fn token(&self) -> Result<String, ApiError> {
        if let Some(t) = self.token.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return Ok(t);
        }
        let _one_at_a_time = self.token_fetch.lock().await;
        if let Some(t) = self.token.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return Ok(t);
        }
        let fresh = match &self.token_source {
            TokenSource::Fixed(t) => t.clone(),
            TokenSource::DevTokenRoute => {
                let body = TokenRequest {
                    user_id: self.user_id.clone(),
                };
                let answer: TokenResponse = self
                    .send_json(
                        Method::POST,
                        self.url(&["v1", "token"]),
                        None,
                        Some(&body),
                        None,
                    )
                    .await?;
                answer.access_token
            }
            TokenSource::Provider(provider) => {
                let provider = provider.clone();
                let user_id = self.user_id.clone();
                tokio::task::spawn_blocking(move || provider.fetch_token(user_id))
                    .await
                    .map_err(|e| {
                        ApiError::Token(crate::error::TokenError::Other(format!(
                            "the provider failed: {e}"
                        )))
                    })?
                    .map_err(ApiError::Token)?
            }
        };
        *self.token.lock().unwrap_or_else(|p| p.into_inner()) = Some(fresh.clone());
        Ok(fresh)
    }

    /// Forgets a token the server refused; returns whether a new one can be had.
    fn drop_token(&self, refused: &str) -> bool {
        let mut token = self.token.lock().unwrap_or_else(|p| p.into_inner());
        if token.as_deref() == Some(refused) {
            *token = None;
        }
        !matches!(self.token_source, TokenSource::Fixed(_))
    }

    /// One request with a JSON answer, no auth handling.
    async fn send_json<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        token: Option<&str>,
        body: Option<&B>,
        timeout: Option<Duration>,
    ) -> Result<T, ApiError> {
        if self.shutdown.is_triggered() {
            return Err(ApiError::ShutDown);
        }
        tokio::select! {
            biased;
            _ = self.shutdown.triggered() => Err(ApiError::ShutDown),
            result = self.send_json_now(method, url, token, body, timeout) => result,
        }
    }

    async fn send_json_now<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        token: Option<&str>,
        body: Option<&B>,
        timeout: Option<Duration>,
    ) -> Result<T, ApiError> {
        let mut request = self.http.request(method, url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Some(timeout) = timeout {
            request = request.timeout(timeout);
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                self.report(false);
                return Err(ApiError::Network(describe(&e)));
            }
        };
        let status = response.status();
        if status.is_redirection() {
            // Not followed (see `same_origin_redirects`): the server answered, not with v1.
            self.report(true);
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("nowhere")
                .to_owned();
            return Err(ApiError::Protocol(format!(
                "the server redirected ({status}) to {location:?}, outside the configured server {}; not followed",
                self.base.origin().ascii_serialization()
            )));
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = match read_capped(response, MAX_ANSWER_BYTES).await {
            Ok(b) => b,
            Err(Capped::TooLarge) => {
                // The server answered (it is reachable), but not with protocol v1. Dropping the
                // response closes the connection without reading the rest.
                self.report(true);
                return Err(ApiError::Protocol(format!(
                    "answer ({status}) larger than {MAX_ANSWER_BYTES} bytes"
                )));
            }
            Err(Capped::Network(e)) => {
                self.report(false);
                return Err(ApiError::Network(describe(&e)));
            }
        };
        self.report(true);
        if !status.is_success() {
            return Err(classify(
                status.as_u16(),
                retry_after.as_deref(),
                &String::from_utf8_lossy(&bytes),
            ));
        }
        // 204 (typing) has no body at all.
        let bytes = if bytes.is_empty() && status == reqwest::StatusCode::NO_CONTENT {
            b"null".to_vec()
        } else {
            bytes
        };
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::Protocol(format!("unexpected answer ({status}): {e}")))
    }

    /// An authenticated request; after a 401 it gets a fresh token and tries once more.
    async fn call<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: Option<&B>,
        timeout: Option<Duration>,
    ) -> Result<T, ApiError> {
        let result = async {
            let token = self.token().await?;
            let first = self
                .send_json(method.clone(), url.clone(), Some(&token), body, timeout)
                .await;
            match first {
                Err(ApiError::Unauthorized(_)) if self.drop_token(&token) => {
                    let token = self.token().await?;
                    self.send_json(method, url, Some(&token), body, timeout)
                        .await
                }
                other => other,
            }
        }
        .await;
        match &result {
            Err(ApiError::Unauthorized(reason))
            | Err(ApiError::Token(crate::error::TokenError::Unauthorized(reason))) => {
                self.observer.unauthorized(reason)
            }
            Err(_) => {}
            Ok(_) => self.observer.authorized(),
        }
        result
    }

    pub async fn put_user(&self, name: &str, avatar_url: Option<&str>) -> Result<User, ApiError> {
        let body = PutUserRequest {
            name: name.to_owned(),
            avatar_url: avatar_url.map(str::to_owned),
        };
        self.call(
            Method::PUT,
            self.url(&["v1", "users", &self.user_id]),
            Some(&body),
            None,
        )
        .await
    }

    pub async fn get_user(&self, user_id: &str) -> Result<User, ApiError> {
        self.call::<(), _>(Method::GET, self.url(&["v1", "users", user_id]), None, None)
            .await
    }

    pub async fn direct_room(&self, user_id: &str) -> Result<Room, ApiError> {
        let body = DirectRoomRequest {
            user_id: user_id.to_owned(),
        };
        self.call(
            Method::POST,
            self.url(&["v1", "rooms", "direct"]),
            Some(&body),
            None,
        )
        .await
    }

    pub async fn list_rooms(&self) -> Result<RoomList, ApiError> {
        self.call::<(), _>(Method::GET, self.url(&["v1", "rooms"]), None, None)
            .await
    }

    /// `PUT /v2/rooms/{room}/messages/{txn}`: idempotent per txn id.
    pub async fn send_message(
        &self,
        room_id: &str,
        txn_id: &str,
        parts: &[Part],
    ) -> Result<v2::Message, ApiError> {
        let body = SendMessageRequest {
            parts: parts.to_vec(),
        };
        let url = self.url(&["v2", "rooms", room_id, "messages", txn_id]);
        let message: v2::Message = self.call(Method::PUT, url, Some(&body), None).await?;
        check_in_room(room_id, &message)?;
        Ok(message)
    }

    /// `PUT /v2/rooms/{room}/messages/{id}/edits/{txn}`.
    pub async fn edit_message(
        &self,
        room_id: &str,
        message_id: u64,
        txn_id: &str,
        parts: &[Part],
    ) -> Result<v2::Message, ApiError> {
        let body = v2::EditRequest {
            parts: parts.to_vec(),
        };
        let id = message_id.to_string();
        let url = self.url(&["v2", "rooms", room_id, "messages", &id, "edits", txn_id]);
        let message: v2::Message = self.call(Method::PUT, url, Some(&body), None).await?;
        check_in_room(room_id, &message)?;
        Ok(message)
    }

    /// `PUT /v2/rooms/{room}/messages/{id}/deletion/{txn}`.
    pub async fn delete_message(
        &self,
        room_id: &str,
        message_id: u64,
        txn_id: &str,
    ) -> Result<v2::Message, ApiError> {
        let id = message_id.to_string();
        let url = self.url(&["v2", "rooms", room_id, "messages", &id, "deletion", txn_id]);
        let message: v2::Message = self.call::<(), _>(Method::PUT, url, None, None).await?;
        check_in_room(room_id, &message)?;
        Ok(message)
    }

    /// `PUT /v2/rooms/{room}/messages/{id}/reactions/{txn}`.
    pub async fn react(
        &self,
        room_id: &str,
        message_id: u64,
        txn_id: &str,
        key: &str,
        on: bool,
    ) -> Result<v2::Message, ApiError> {
        let body = v2::ReactionRequest {
            key: key.to_owned(),
            on,
        };
        let id = message_id.to_string();
        let url = self.url(&["v2", "rooms", room_id, "messages", &id, "reactions", txn_id]);
        let message: v2::Message = self.call(Method::PUT, url, Some(&body), None).await?;
        check_in_room(room_id, &message)?;
        Ok(message)
    }

    /// `PUT /v2/rooms/{room}/receipt/{txn}`.
    pub async fn receipt(
        &self,
        room_id: &str,
        txn_id: &str,
        message_id: u64,
    ) -> Result<v2::ReceiptResponse, ApiError> {
        let body = v2::ReceiptRequest { message_id };
        let url = self.url(&["v2", "rooms", room_id, "receipt", txn_id]);
        self.call(Method::PUT, url, Some(&body), None).await
    }

    /// `PUT /v2/rooms/{room}/typing` (answered 204: no body to read).
    pub async fn typing(&self, room_id: &str, typing: bool) -> Result<(), ApiError> {
        let body = v2::TypingRequest { typing };
        let url = self.url(&["v2", "rooms", room_id, "typing"]);
        self.call::<_, NoContent>(Method::PUT, url, Some(&body), None)
            .await
            .map(|_| ())
    }

    /// One history page (v2: messages with their state); checks that it is ascending and on the
    /// requested side of `initial_id`.
    pub async fn history(
        &self,
        room_id: &str,
        initial_id: Option<u64>,
        direction: Direction,
        limit: u32,
    ) -> Result<v2::HistoryResponse, ApiError> {
        let mut url = self.url(&["v2", "rooms", room_id, "messages"]);
        {
            let mut q = url.query_pairs_mut();
            if let Some(id) = initial_id {
                q.append_pair("initial_id", &id.to_string());
            }
            q.append_pair(
                "direction",
                match direction {
                    Direction::Older => "older",
                    Direction::Newer => "newer",
                },
            );
            q.append_pair("limit", &limit.to_string());
        }
        let page: v2::HistoryResponse = self.call::<(), _>(Method::GET, url, None, None).await?;
        check_ascending(room_id, &page.messages)?;
        if let (Some(initial), Some(first), Some(last)) =
            (initial_id, page.messages.first(), page.messages.last())
        {
            let ok = match direction {
                Direction::Older => last.id < initial,
                Direction::Newer => first.id > initial,
            };
            if !ok {
                return Err(ApiError::Protocol(format!(
                    "history page of {room_id} crosses initial_id {initial}"
                )));
            }
        }
        Ok(page)
    }

    /// `GET /v2/sync`; `timeout_ms` is the long-poll hold (0: answer at once).
    pub async fn sync(
        &self,
        since: Option<&str>,
        timeout_ms: u64,
        limit: u32,
    ) -> Result<v2::SyncResponse, ApiError> {
        let mut url = self.url(&["v2", "sync"]);
        {
            let mut q = url.query_pairs_mut();
            if let Some(since) = since {
                q.append_pair("since", since);
            }
            q.append_pair("timeout_ms", &timeout_ms.to_string());
            q.append_pair("limit", &limit.to_string());
        }
        let timeout = REQUEST_TIMEOUT + Duration::from_millis(timeout_ms);
        let response: v2::SyncResponse = self
            .call::<(), _>(Method::GET, url, None, Some(timeout))
            .await?;
        for (room_id, room) in &response.rooms {
            check_ascending(room_id, &room.messages)?;
            check_ascending(room_id, &room.updates)?;
        }
        Ok(response)
    }
}

/// The answer of a route that answers 204: any JSON or none at all.
struct NoContent;

impl<'de> serde::Deserialize<'de> for NoContent {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d).map(|_| NoContent)
    }
}

/// Protocol check: an answer about a message of `room_id` is about a message of that room.
fn check_in_room(room_id: &str, message: &v2::Message) -> Result<(), ApiError> {
    if message.room_id != room_id {
        return Err(ApiError::Protocol(format!(
            "asked about room {room_id} but the server answered about {}",
            message.room_id
        )));
    }
    Ok(())
}

/// Why [`read_capped`] stopped.
enum Capped {
    /// The body is (or announces itself) larger than the cap.
    TooLarge,
    /// The connection failed while reading.
    Network(reqwest::Error),
}

/// Reads the body of `response`, refusing (without reading further) one over `cap` bytes: at
/// once when `Content-Length` announces more, else as soon as more has arrived.
async fn read_capped(mut response: reqwest::Response, cap: usize) -> Result<Vec<u8>, Capped> {
    let announced = response.content_length();
    if announced.is_some_and(|len| len > cap as u64) {
        return Err(Capped::TooLarge);
    }
    // Pre-allocate for an acceptable announced length, but not more than 1 MiB on its word
    // alone: a server may announce a length and then send nothing.
    let mut body = Vec::with_capacity(announced.map_or(0, |len| len.min(1 << 20) as usize));
    while let Some(chunk) = response.chunk().await.map_err(Capped::Network)? {
        if chunk.len() > cap - body.len() {
            return Err(Capped::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Protocol check: messages of one room, strictly ascending ids, each tagged with that room.
fn check_ascending(room_id: &str, messages: &[v2::Message]) -> Result<(), ApiError> {
    let mut previous = None;
    for m in messages {
        if m.room_id != room_id {
            return Err(ApiError::Protocol(format!(
                "message {} of room {} listed under room {room_id}",
                m.id, m.room_id
            )));
        }
        if previous.is_some_and(|p| m.id <= p) {
            return Err(ApiError::Protocol(format!(
                "message ids of room {room_id} go backwards at {}",
                m.id
            )));
        }
        previous = Some(m.id);
    }
    Ok(())
}

/// How [`describe`] starts a connection that could not be made: the request never left the
/// device ([`ApiError::never_left`]).
const COULD_NOT_CONNECT: &str = "could not connect";

/// A reqwest error as one line, without the URL's query (it may carry a token).
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        COULD_NOT_CONNECT
    } else {
        "request failed"
    };
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {detail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ChatError;

    #[test]
    fn transient_and_permanent_answers_are_told_apart() {
        let body = r#"{"error":"forbidden","error_description":"not a member of r1"}"#;
        assert_eq!(
            classify(403, None, body),
            ApiError::Rejected {
                status: 403,
                code: "forbidden".into(),
                reason: "not a member of r1".into()
            }
        );
        assert!(!classify(413, None, "").is_transient());
        assert!(!classify(400, None, "").is_transient());
        assert!(matches!(classify(404, None, body), ApiError::NotFound(_)));
        assert!(matches!(
            classify(401, None, body),
            ApiError::Unauthorized(_)
        ));
        for status in [408, 429, 500, 502, 503, 504] {
            assert!(classify(status, None, "").is_transient(), "{status}");
        }
        assert_eq!(
            classify(429, Some("7"), "").retry_after(),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            classify(503, Some("Wed, 21 Oct 2015 07:28:00 GMT"), "").retry_after(),
            None
        );
        assert_eq!(
            classify(503, Some("99999999"), "").retry_after(),
            Some(MAX_RETRY_AFTER)
        );
        assert!(ApiError::Network("refused".into()).is_transient());
        assert!(!ApiError::Protocol("x".into()).is_transient());
    }

    #[test]
    fn rejected_keeps_the_servers_reason_for_the_app() {
        let e: ChatError = Error::Api(classify(
            413,
            None,
            r#"{"error":"payload_too_large","error_description":"text part over 16 KiB"}"#,
        ))
        .into();
        assert_eq!(
            e,
            ChatError::Rejected {
                code: "payload_too_large".into(),
                reason: "text part over 16 KiB".into()
            }
        );
    }

    #[test]
    fn plain_http_is_for_loopback_only_unless_allowed() {
        assert!(validate_server_url("http://127.0.0.1:5000", false).is_ok());
        assert!(validate_server_url("http://localhost:5000/", false).is_ok());
        assert!(validate_server_url("http://[::1]:5000", false).is_ok());
        assert!(validate_server_url("https://chat.example.com", false).is_ok());
        assert!(matches!(
            validate_server_url("http://chat.example.com", false),
            Err(Error::InvalidInput(_))
        ));
        assert!(validate_server_url("http://chat.example.com", true).is_ok());
        assert!(matches!(
            validate_server_url("ftp://x", true),
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(
            validate_server_url("not a url", true),
            Err(Error::InvalidInput(_))
        ));
    }

    #[test]
    fn path_segments_are_escaped_and_joined_under_the_base_path() {
        let config = ClientConfig::new(
            "http://127.0.0.1:1/api/",
            "/tmp/x",
            "a/b",
            TokenSource::DevTokenRoute,
        );
        struct Quiet;
        impl RequestObserver for Quiet {
            fn request_result(&self, _: bool) {}
            fn unauthorized(&self, _: &str) {}
            fn authorized(&self) {}
        }
        let api = Api::new(&config, Arc::new(Quiet), Shutdown::new()).unwrap();
        assert_eq!(
            api.url(&["v1", "users", "a/b"]).as_str(),
            "http://127.0.0.1:1/api/v1/users/a%2Fb"
        );
    }

    #[test]
    fn backwards_ids_are_a_protocol_error() {
        let m = |id| v2::Message {
            id,
            user_id: "u".into(),
            room_id: "r".into(),
            parts: vec![],
            created_at: String::new(),
            updated_at: String::new(),
            edited_at: None,
            deleted: false,
            reactions: vec![],
            txn_id: None,
        };
        assert!(check_ascending("r", &[m(1), m(2)]).is_ok());
        assert!(matches!(
            check_ascending("r", &[m(2), m(2)]),
            Err(ApiError::Protocol(_))
        ));
        assert!(matches!(
            check_ascending("x", &[m(1)]),
            Err(ApiError::Protocol(_))
        ));
    }
}
