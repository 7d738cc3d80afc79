//! Tokens: a provider is asked again after a 401; a fixed token that is refused is final.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use chatsync_core::{
    ChatClient, ChatError, ClientConfig, ClientEvent, TokenError, TokenProvider, TokenSource,
};

use crate::common::*;

/// Hands out a bogus token first, then the good one.
struct Rotating {
    good: String,
    calls: AtomicU32,
}

impl TokenProvider for Rotating {
    fn fetch_token(&self, user_id: String) -> Result<String, TokenError> {
        assert_eq!(user_id, "alice");
        Ok(match self.calls.fetch_add(1, Ordering::SeqCst) {
            0 => "bogus".into(),
            _ => self.good.clone(),
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_is_asked_again_after_a_401() {
    let server = TestServer::start().await;
    let root = tempfile::tempdir().unwrap();
    let provider = Arc::new(Rotating {
        good: dev_token(&server, "alice").await,
        calls: AtomicU32::new(0),
    });
    let config = ClientConfig::new(
        server.url(),
        root.path().join("alice"),
        "alice",
        TokenSource::Provider(provider.clone()),
    );
    let client = ChatClient::new(config).unwrap();
    let report = client.sync_once().await.unwrap();
    assert!(report.online);
    assert_eq!(
        provider.calls.load(Ordering::SeqCst),
        2,
        "asked once, refused, asked again"
    );
    client.sync_once().await.unwrap();
    assert_eq!(
        provider.calls.load(Ordering::SeqCst),
        2,
        "the good token is kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_fixed_token_is_unauthorized_and_keeps_the_outbox() {
    let server = TestServer::start().await;
    let root = tempfile::tempdir().unwrap();
    let config = ClientConfig::new(
        server.url(),
        root.path().join("alice"),
        "alice",
        TokenSource::Fixed("bogus".into()),
    );
    let client = ChatClient::new(config).unwrap();
    client.send_text("r1".into(), "kept".into()).await.unwrap();
    assert!(matches!(
        client.sync_once().await,
        Err(ChatError::Unauthorized(_))
    ));
    assert_eq!(
        texts(&client.messages("r1".into(), 10, None).unwrap()),
        vec!["kept"]
    );
    assert_eq!(client.outbox().unwrap().len(), 1);
}

/// A provider that cannot reach its own backend.
struct Answers(Result<String, TokenError>);

impl TokenProvider for Answers {
    fn fetch_token(&self, _: String) -> Result<String, TokenError> {
        self.0.clone()
    }
}

/// Issue 13: a provider that said "offline" became `Unauthorized`, and an app would sign the
/// user out in a tunnel. Offline stays offline (and queued sends stay queued); only a refusal
/// is `Unauthorized`, and it is announced with an event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_is_offline_is_offline_and_a_refusal_is_announced() {
    let server = TestServer::start().await;
    let root = tempfile::tempdir().unwrap();
    let client = |dir: &str, answer: Result<String, TokenError>| {
        ChatClient::new(ClientConfig::new(
            server.url(),
            root.path().join(dir),
            "alice",
            TokenSource::Provider(Arc::new(Answers(answer))),
        ))
        .unwrap()
    };
    let tunnel = client("tunnel", Err(TokenError::Offline("no network".into())));
    tunnel
        .send_text("r1".into(), "queued".into())
        .await
        .unwrap();
    let report = tunnel.sync_once().await.unwrap();
    assert!(!report.online && report.pending == 1, "{report:?}");
    match tunnel.open_direct_room("bob".into()).await {
        Err(ChatError::Offline(m)) => assert!(m.contains("no network"), "{m}"),
        other => panic!("expected Offline, got {other:?}"),
    }

    let signed_out = client("out", Err(TokenError::Unauthorized("signed out".into())));
    let recorder = Arc::new(Recorder::default());
    let _sub = signed_out.subscribe(recorder.clone());
    assert!(matches!(
        signed_out.sync_once().await,
        Err(ChatError::Unauthorized(_))
    ));
    assert!(
        wait_for(std::time::Duration::from_secs(5), || recorder
            .snapshot()
            .iter()
            .any(
                |e| matches!(e, ClientEvent::Unauthorized { reason } if reason == "signed out")
            ))
        .await,
        "{:?}",
        recorder.snapshot()
    );
}

/// Issue 13: a bad token on a started client showed no event, only backing off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_on_a_started_client_is_announced() {
    let server = TestServer::start().await;
    let root = tempfile::tempdir().unwrap();
    let client = ChatClient::new(ClientConfig::new(
        server.url(),
        root.path().join("alice"),
        "alice",
        TokenSource::Fixed("bogus".into()),
    ))
    .unwrap();
    let recorder = Arc::new(Recorder::default());
    let _sub = client.subscribe(recorder.clone());
    client.start();
    assert!(
        wait_for(std::time::Duration::from_secs(10), || recorder
            .snapshot()
            .iter()
            .any(|e| matches!(e, ClientEvent::Unauthorized { .. })))
        .await,
        "{:?}",
        recorder.snapshot()
    );
    client.shutdown();
}
