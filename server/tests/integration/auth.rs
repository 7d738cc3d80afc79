//! Authentication: 401 for missing, malformed, forged and expired tokens; dev and secret modes.

use std::time::{SystemTime, UNIX_EPOCH};

use chatsync_server::auth::{Claims, TokenKeys};
use chatsync_server::AuthMode;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{answer, Client, TestServer};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn rooms_with(t: &TestServer, authorization: Option<&str>) -> crate::support::Answer {
    let mut r = t.http.get(format!("{}/v1/rooms", t.url));
    if let Some(value) = authorization {
        r = r.header("authorization", value);
    }
    answer(r.send().await.unwrap()).await
}

#[tokio::test]
async fn dev_tokens_have_the_documented_shape() {
    let t = TestServer::start().await;
    let r = t
        .http
        .post(format!("{}/v1/token", t.url))
        .json(&json!({"user_id": "alice"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["access_token"].as_str().unwrap().split('.').count(), 3);
    let r = t
        .http
        .post(format!("{}/v1/token", t.url))
        .json(&json!({"user_id": ""}))
        .send()
        .await
        .unwrap();
    answer(r)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad_request");
}

#[tokio::test]
async fn missing_malformed_forged_and_expired_tokens_are_401() {
    let t = TestServer::start().await;
    let alice = t.user("alice").await;
    for header in [
        None,
        Some("Bearer"),
        Some("Basic abc"),
        Some("Bearer not.a.jwt"),
        Some("Bearer x"),
    ] {
        let a = rooms_with(&t, header).await;
        a.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    // Signed with another secret.
    let forged = TokenKeys::new("not the server's secret", 60).issue("alice");
    rooms_with(&t, Some(&format!("Bearer {forged}")))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    // A valid signature over tampered claims.
    let mut segments: Vec<&str> = alice.token.split('.').collect();
    let evil_claims =
        base64_url(&serde_json::to_vec(&json!({"sub": "mallory", "exp": now() + 60})).unwrap());
    segments[1] = &evil_claims;
    rooms_with(&t, Some(&format!("Bearer {}", segments.join("."))))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    // Expired (signed with the server's real secret, kept beside the database).
    let secret = std::fs::read_to_string(t.dir.path().join("chat.db.token-secret")).unwrap();
    let keys = TokenKeys::new(secret.trim(), 60);
    let expired = keys.sign_claims(&Claims {
        sub: "alice".into(),
        exp: now() - 3600,
        iat: None,
        nbf: None,
    });
    let a = rooms_with(&t, Some(&format!("Bearer {expired}"))).await;
    a.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    assert!(a.body["error_description"]
        .as_str()
        .unwrap()
        .contains("expired"));
    // The same keys with a live exp work: the secret file really is the server's.
    let live = keys.issue("alice");
    assert_eq!(
        rooms_with(&t, Some(&format!("Bearer {live}"))).await.status,
        StatusCode::OK
    );
    // The 401 carries the bearer challenge.
    let r = t
        .http
        .get(format!("{}/v1/rooms", t.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test]
async fn secret_mode_turns_token_issuing_off_and_accepts_backend_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start_in(dir, |c| {
        c.auth = AuthMode::Secret;
        c.token_secret = Some("shared-with-the-app-backend".into());
    })
    .await;
    let r = t
        .http
        .post(format!("{}/v1/token", t.url))
        .json(&json!({"user_id": "alice"}))
        .send()
        .await
        .unwrap();
    answer(r)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    assert!(
        !t.dir.path().join("chat.db.token-secret").exists(),
        "a given secret is not written to disk"
    );
    let backend = TokenKeys::new("shared-with-the-app-backend", 600);
    let alice = Client {
        url: t.url.clone(),
        http: t.http.clone(),
        token: backend.issue("alice"),
    };
    let room = alice.create_room(&[]).await;
    assert_eq!(room.member_ids, vec!["alice"]);
}

#[tokio::test]
async fn the_generated_secret_survives_a_restart_so_tokens_stay_valid() {
    let t = TestServer::start().await;
    let alice = t.user("alice").await;
    let mut t = t;
    let addr = t.server().addr();
    t.server.take().unwrap().shutdown().await;
    let dir = t.dir;
    let t2 = TestServer::start_in(dir, |c| c.addr = addr).await;
    assert_eq!(
        rooms_with(&t2, Some(&format!("Bearer {}", alice.token)))
            .await
            .status,
        StatusCode::OK
    );
}
