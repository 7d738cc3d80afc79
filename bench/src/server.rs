//! The real reference server for the network scenarios, seeded fast: users, rooms and a large
//! history are written into its SQLite file before it starts (through the server's own store
//! and its bench-only bulk insert), then it serves on 127.0.0.1 like in every other test.

use std::path::Path;

use chatsync_protocol::{Part, User};
use chatsync_server::store::sql::SqlStore;
use chatsync_server::store::{NewMessage, Store};
use chatsync_server::{RunningServer, ServerConfig};

use crate::data::text_of;

/// A seeded server and what the scenarios need to know about it.
pub struct SeededServer {
    /// The running server (loopback).
    pub server: RunningServer,
    /// Room ids, in creation order.
    pub rooms: Vec<String>,
    /// Newest message id on the server.
    pub newest_id: u64,
    /// alice's token (the device's user).
    pub alice_token: String,
    /// bob's token (the other sender).
    pub bob_token: String,
}

/// Seeds `total` messages round-robin over `rooms` rooms of alice and bob (message `id` has
/// [`text_of`]`(id)`, sent by bob for odd ids), then starts the server on `db`.
pub async fn start_seeded(db: &Path, total: u64, rooms: usize) -> SeededServer {
    let db_path = db.to_owned();
    let room_ids = tokio::task::spawn_blocking(move || {
        let store = SqlStore::open(&db_path).expect("open the server's database");
        let now = "2026-11-25T06:00:00.000Z";
        for (id, name) in [("alice", "Alice"), ("bob", "Bob")] {
            store
                .put_user(User {
                    id: id.into(),
                    name: name.into(),
                    avatar_url: None,
                })
                .wait()
                .expect("seed a user");
        }
        let members = vec!["alice".to_owned(), "bob".to_owned()];
        let room_ids: Vec<String> = (0..rooms)
            .map(|i| {
                store
                    .create_room(Some(format!("room {i}")), members.clone(), now.into())
                    .wait()
                    .expect("seed a room")
                    .id
            })
            .collect();
        let mut next = 1u64;
        while next <= total {
            let end = (next + 10_000).min(total + 1);
            let batch: Vec<NewMessage> = (next..end)
                .map(|id| NewMessage {
                    room_id: room_ids[(id % rooms as u64) as usize].clone(),
                    sender: if id % 2 == 0 { "alice" } else { "bob" }.into(),
                    txn_id: format!("seed-{id}"),
                    parts: vec![Part::text(text_of(id))],
                    now: now.into(),
                })
                .collect();
            let ids = store
                .seed_messages_for_benches(&batch)
                .expect("seed messages");
            assert_eq!(
                ids,
                (next..end).collect::<Vec<_>>(),
                "the server assigned unexpected ids"
            );
            next = end;
        }
        store.close();
        room_ids
    })
    .await
    .expect("seeding task");
    let server = chatsync_server::start(ServerConfig::for_tests(db))
        .await
        .expect("start the server");
    let url = server.url();
    SeededServer {
        alice_token: token(&url, "alice").await,
        bob_token: token(&url, "bob").await,
        server,
        rooms: room_ids,
        newest_id: total,
    }
}

async fn token(url: &str, user: &str) -> String {
    let answer: serde_json::Value = reqwest::Client::new()
        .post(format!("{url}/v1/token"))
        .json(&serde_json::json!({ "user_id": user }))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .expect("POST /v1/token")
        .json()
        .await
        .expect("token answer");
    answer["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

impl SeededServer {
    /// Sends `n` new messages as bob through the real HTTP API (one request each), round-robin
    /// over the rooms, checking the ids the server assigns.
    pub async fn send_new(&mut self, n: u64) {
        let http = reqwest::Client::new();
        let url = self.server.url();
        for _ in 0..n {
            let id = self.newest_id + 1;
            let room = &self.rooms[(id % self.rooms.len() as u64) as usize];
            let answer: serde_json::Value = http
                .put(format!("{url}/v1/rooms/{room}/messages/bench-{id}"))
                .bearer_auth(&self.bob_token)
                .json(&serde_json::json!({ "parts": [{ "type": "text/plain", "content": text_of(id) }] }))
                .send()
                .await
                .and_then(|r| r.error_for_status())
                .expect("send a message")
                .json()
                .await
                .expect("send answer");
            assert_eq!(
                answer["id"].as_u64(),
                Some(id),
                "unexpected id for a new message: {answer}"
            );
            self.newest_id = id;
        }
    }
}
