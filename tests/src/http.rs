//! A minimal protocol client for the harness itself: dev tokens, rooms, full room history (v1
//! and v2), a user's v2 initial sync (receipts, unread counts).
//! The soak uses it to set the scene and to read the server's truth at the end; it is kept apart
//! from the core on purpose, so the checks do not go through the code they check.

use chatsync_protocol::{HistoryResponse, Message, Room, TokenResponse};
use serde_json::json;

/// An error of the harness client: any failure, with what was asked.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {detail}")]
pub struct HttpError {
    /// The request.
    pub what: String,
    /// What went wrong.
    pub detail: String,
}

/// A harness client of one server.
#[derive(Clone)]
pub struct Harness {
    base: String,
    http: reqwest::Client,
}

impl Harness {
    /// A client of the server at `base` (`http://127.0.0.1:PORT`).
    pub fn new(base: impl Into<String>) -> Harness {
        Harness {
            base: base.into(),
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .expect("reqwest client"),
        }
    }

    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<T, HttpError> {
        let err = |detail: String| HttpError {
            what: what.to_owned(),
            detail,
        };
        let response = request.send().await.map_err(|e| err(e.to_string()))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| err(e.to_string()))?;
        if !status.is_success() {
            return Err(err(format!("{status}: {}", String::from_utf8_lossy(&body))));
        }
        serde_json::from_slice(&body).map_err(|e| err(e.to_string()))
    }

    /// A dev-mode token for `user`.
    pub async fn token(&self, user: &str) -> Result<String, HttpError> {
        let answer: TokenResponse = self
            .json(
                "POST /v1/token",
                self.http
                    .post(format!("{}/v1/token", self.base))
                    .json(&json!({ "user_id": user })),
            )
            .await?;
        Ok(answer.access_token)
    }

    /// Creates a room as `token`'s user with `members`.
    pub async fn create_room(
        &self,
        token: &str,
        name: &str,
        members: &[String],
    ) -> Result<Room, HttpError> {
        self.json(
            "POST /v1/rooms",
            self.http
                .post(format!("{}/v1/rooms", self.base))
                .bearer_auth(token)
                .json(&json!({ "name": name, "member_ids": members })),
        )
        .await
    }

    /// Every message of `room`, ascending, walked with `direction=newer` pages of 100.
    pub async fn full_history(&self, token: &str, room: &str) -> Result<Vec<Message>, HttpError> {
        self.history_after(token, room, None).await
    }

    /// Every message of `room` after the id `after` (all of them for `None`), ascending.
    pub async fn history_after(
        &self,
        token: &str,
        room: &str,
        after: Option<u64>,
    ) -> Result<Vec<Message>, HttpError> {
        let mut all: Vec<Message> = Vec::new();
        let mut after = after;
        loop {
            let mut url = format!(
                "{}/v1/rooms/{room}/messages?direction=newer&limit=100",
                self.base
            );
            if let Some(last) = after {
                url.push_str(&format!("&initial_id={last}"));
            }
            let page: HistoryResponse = self
                .json("GET history", self.http.get(url).bearer_auth(token))
                .await?;
            let more = page.has_more;
            all.extend(page.messages);
            after = all.last().map(|m| m.id).or(after);
            if !more {
                return Ok(all);
            }
        }
    }

    /// Every message of `room` in its v2 state (tombstones, edits, reactions with `me` for
    /// `token`'s user, `txn_id` on that user's own messages), ascending, in pages of 100.
    pub async fn v2_full_history(
        &self,
        token: &str,
        room: &str,
    ) -> Result<Vec<chatsync_protocol::v2::Message>, HttpError> {
        self.v2_history_after(token, room, None).await
    }

    /// Every message of `room` after the id `after` (all of them for `None`) in its v2 state,
    /// ascending, in pages of 100.
    pub async fn v2_history_after(
        &self,
        token: &str,
        room: &str,
        after: Option<u64>,
    ) -> Result<Vec<chatsync_protocol::v2::Message>, HttpError> {
        let mut all: Vec<chatsync_protocol::v2::Message> = Vec::new();
        let mut after = after;
        loop {
            let mut url = format!(
                "{}/v2/rooms/{room}/messages?direction=newer&limit=100",
                self.base
            );
            if let Some(last) = after {
                url.push_str(&format!("&initial_id={last}"));
            }
            let page: chatsync_protocol::v2::HistoryResponse = self
                .json("GET v2 history", self.http.get(url).bearer_auth(token))
                .await?;
            let more = page.has_more && !page.messages.is_empty();
            all.extend(page.messages);
            after = all.last().map(|m| m.id).or(after);
            if !more {
                return Ok(all);
            }
        }
    }

    /// The message `id` of `room` in its v2 state as `token`'s user gets it (`None`: the room
    /// holds no such message): one page of one message just after `id - 1`.
    pub async fn v2_message(
        &self,
        token: &str,
        room: &str,
        id: u64,
    ) -> Result<Option<chatsync_protocol::v2::Message>, HttpError> {
        let mut url = format!(
            "{}/v2/rooms/{room}/messages?direction=newer&limit=1",
            self.base
        );
        if id > 0 {
            url.push_str(&format!("&initial_id={}", id - 1));
        }
        let page: chatsync_protocol::v2::HistoryResponse = self
            .json("GET v2 message", self.http.get(url).bearer_auth(token))
            .await?;
        Ok(page.messages.into_iter().find(|m| m.id == id))
    }

    /// `token`'s user's v2 initial sync (no `since`, one message per room, no wait): every room
    /// with every member's receipt and the user's unread count, as the server counts them now.
    pub async fn v2_initial_sync(
        &self,
        token: &str,
    ) -> Result<chatsync_protocol::v2::SyncResponse, HttpError> {
        let url = format!("{}/v2/sync?limit=1&timeout_ms=0", self.base);
        self.json("GET v2 sync", self.http.get(url).bearer_auth(token))
            .await
    }
}
