//! Security checks that the server's and core's own tests leave open: the core refuses plain
//! http to a non-loopback host unless the app opts in (through the public constructor, before
//! any store is created), and no bearer token or token secret reaches the logs of a device and
//! a server working together, even at trace level with every dependency's logs on. (Room privacy
//! on every route and forged tokens: server_hostile.rs.)

use std::io::Write;
use std::sync::{Arc, Mutex};

use chatsync_core::{ChatClient, ChatError, ClientConfig, TokenSource};
use chatsync_server::auth::TokenKeys;
use chatsync_server::{AuthMode, ServerConfig};
use chatsync_tests::http::Harness;

#[test]
fn plain_http_to_a_non_loopback_host_is_refused_unless_opted_in() {
    // `.invalid` never resolves; no request is made by a constructor anyway.
    for url in [
        "http://chat.invalid",
        "http://chat.invalid:80/api",
        "http://CHAT.invalid./x",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        let config = ClientConfig::new(url, &store, "alice", TokenSource::Fixed("t".into()));
        match ChatClient::new(config.clone()) {
            Err(ChatError::InvalidInput(m)) => assert!(m.contains("https"), "{m}"),
            Err(e) => panic!("{url}: {e:?}"),
            Ok(_) => panic!("{url}: plain http to a non-loopback host was accepted"),
        }
        assert!(!store.exists(), "{url}: a refused URL created a store");
        let mut opted_in = config;
        opted_in.allow_insecure_http = true;
        assert!(ChatClient::new(opted_in).is_ok(), "{url}: opting in works");
    }
    for url in [
        "https://chat.invalid",
        "http://127.0.0.1:9",
        "http://localhost:9",
        "http://[::1]:9",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let config = ClientConfig::new(url, dir.path(), "alice", TokenSource::Fixed("t".into()));
        assert!(ChatClient::new(config).is_ok(), "{url}");
    }
}

/// Every log line of the process, whatever thread wrote it.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_secrets_never_reach_the_logs() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("trace"))
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();
    let secret = "very-secret-token-key-0123456789";
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::for_tests(dir.path().join("s.db"));
    config.auth = AuthMode::Secret;
    config.token_secret = Some(secret.into());
    let server = chatsync_server::start(config).await.unwrap();
    let h = Harness::new(server.url());
    // Secret mode: the app's backend signs the tokens with the shared secret.
    let backend = TokenKeys::new(secret, 3600);
    let token = backend.issue("alice");
    let bob = backend.issue("bob");
    let room = h.create_room(&token, "r", &["bob".into()]).await.unwrap();

    let mut c = ClientConfig::new(
        server.url(),
        dir.path().join("alice"),
        "alice",
        TokenSource::Fixed(token.clone()),
    );
    c.cache_capacity_bytes = 1 << 20;
    let client = ChatClient::new(c).unwrap();
    client.login("Alice".into(), None).await.unwrap();
    client
        .send_text(room.id.clone(), "hello".into())
        .await
        .unwrap();
    assert_eq!(client.sync_once().await.unwrap().sent, 1);
    // A refused token too: the 401 path logs, but not the token.
    let mut c = ClientConfig::new(
        server.url(),
        dir.path().join("eve"),
        "eve",
        TokenSource::Fixed(format!("{token}x")),
    );
    c.cache_capacity_bytes = 1 << 20;
    let eve = ChatClient::new(c).unwrap();
    assert!(matches!(
        eve.sync_once().await,
        Err(ChatError::Unauthorized(_))
    ));
    drop((client, eve));
    server.shutdown().await;

    let logs = String::from_utf8_lossy(&captured.0.lock().unwrap()).to_string();
    assert!(logs.lines().count() > 10, "the logs were captured: {logs}");
    for (what, needle) in [
        ("alice's token", token.as_str()),
        ("alice's token signature", token.rsplit('.').next().unwrap()),
        ("bob's token", bob.as_str()),
        ("the token secret", secret),
    ] {
        assert!(!logs.contains(needle), "{what} appears in the logs");
    }
}
