//! Authentication: 401 for missing, malformed, forged and expired tokens; dev and secret modes.

use std::time::{SystemTime, UNIX_EPOCH};

use chatsync_server::auth::{Claims, TokenKeys};
use chatsync_server::{AuthMode, ServerConfig, ServerError};
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
    // Expired (signed with the server's real dev key, derived from the secret beside the database).
    let secret = std::fs::read_to_string(t.dir.path().join("chat.db.dev-token-secret")).unwrap();
    let keys = TokenKeys::dev(secret.trim(), 60);
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
    for file in ["chat.db.token-secret", "chat.db.dev-token-secret"] {
        assert!(
            !t.dir.path().join(file).exists(),
            "secret mode writes no secret to disk ({file})"
        );
    }
    let backend = TokenKeys::new("shared-with-the-app-backend", 600);
    let alice = Client {
        url: t.url.clone(),
        http: t.http.clone(),
        token: backend.issue("alice"),
        spread: Default::default(),
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

#[tokio::test]
async fn a_dev_token_is_refused_after_a_restart_in_secret_mode_on_the_same_database() {
    let t = TestServer::start().await;
    let alice = t.user("alice").await;
    let bearer = format!("Bearer {}", alice.token);
    assert_eq!(rooms_with(&t, Some(&bearer)).await.status, StatusCode::OK);
    let mut t = t;
    t.server.take().unwrap().shutdown().await;
    let db = t.dir.path().join("chat.db");
    let dev_secret = std::fs::read_to_string(t.dir.path().join("chat.db.dev-token-secret"))
        .unwrap()
        .trim()
        .to_owned();

    // Secret mode takes only the operator's secret: without one it does not start (older
    // versions read the file dev mode had written, so dev tokens stayed valid).
    let mut config = ServerConfig::for_tests(&db);
    config.auth = AuthMode::Secret;
    match chatsync_server::start(config).await {
        Err(ServerError::Config(m)) => assert!(m.contains("--token-secret"), "{m}"),
        other => panic!("secret mode started without a secret: {other:?}"),
    }
    // With a secret, the dev token is refused, even when the operator hands over dev mode's
    // own secret: the two modes derive different keys.
    for secret in ["the-operators-own-secret".to_owned(), dev_secret] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(&db, dir.path().join("chat.db")).unwrap();
        let t2 = TestServer::start_in(dir, |c| {
            c.auth = AuthMode::Secret;
            c.token_secret = Some(secret.clone());
        })
        .await;
        let a = rooms_with(&t2, Some(&bearer)).await;
        a.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
        assert!(
            a.body["error_description"]
                .as_str()
                .unwrap()
                .contains("signature"),
            "{}",
            a.body
        );
        // The backend's tokens work.
        let backend = TokenKeys::new(secret.as_str(), 60).issue("alice");
        assert_eq!(
            rooms_with(&t2, Some(&format!("Bearer {backend}")))
                .await
                .status,
            StatusCode::OK
        );
    }
}

#[tokio::test]
async fn tokens_issued_in_the_future_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start_in(dir, |c| {
        c.auth = AuthMode::Secret;
        c.token_secret = Some("shared-with-the-app-backend".into());
    })
    .await;
    let backend = TokenKeys::new("shared-with-the-app-backend", 600);
    let signed_at = |iat: u64| {
        backend.sign_claims(&Claims {
            sub: "alice".into(),
            exp: now() + 7200,
            iat: Some(iat),
            nbf: None,
        })
    };
    let a = rooms_with(&t, Some(&format!("Bearer {}", signed_at(now() + 3600)))).await;
    a.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    assert!(
        a.body["error_description"]
            .as_str()
            .unwrap()
            .contains("issued in the future"),
        "{}",
        a.body
    );
    // A few seconds of clock skew are tolerated.
    let skewed = rooms_with(&t, Some(&format!("Bearer {}", signed_at(now() + 5)))).await;
    assert_eq!(skewed.status, StatusCode::OK);
}

#[tokio::test]
async fn token_lifetimes_outside_one_second_to_a_year_are_refused_at_start() {
    for ttl in [0, chatsync_server::auth::MAX_TOKEN_TTL_SECS + 1, u64::MAX] {
        let dir = tempfile::tempdir().unwrap();
        let mut config = ServerConfig::for_tests(dir.path().join("chat.db"));
        config.token_ttl_secs = ttl;
        match chatsync_server::start(config).await {
            Err(ServerError::Config(m)) => assert!(m.contains("--token-ttl"), "{m}"),
            other => panic!("ttl {ttl}: {other:?}"),
        }
    }
    // The largest allowed lifetime issues a token that works.
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start_in(dir, |c| {
        c.token_ttl_secs = chatsync_server::auth::MAX_TOKEN_TTL_SECS
    })
    .await;
    let alice = t.user("alice").await;
    assert_eq!(
        rooms_with(&t, Some(&format!("Bearer {}", alice.token)))
            .await
            .status,
        StatusCode::OK
    );
}
