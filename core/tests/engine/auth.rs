//! Tokens: a provider is asked again after a 401; a fixed token that is refused is final.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use chatsync_core::{ChatClient, ChatError, ClientConfig, TokenProvider, TokenSource};

use crate::common::*;

/// Hands out a bogus token first, then the good one.
struct Rotating {
    good: String,
    calls: AtomicU32,
}

impl TokenProvider for Rotating {
    fn fetch_token(&self, user_id: String) -> Result<String, ChatError> {
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
