//! `chatsync chat` driven through pipes: history at once, live messages from the other user,
//! typed lines sent, and the same offline (server SIGKILLed) with catch-up when it is back.

use crate::support::{ChatSession, Device, Server};

fn texts_for(device: &Device, with: &str) -> Vec<String> {
    let messages = device.json(&["messages", "--with", with, "--json"]);
    messages
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn chat_shows_history_live_messages_and_sends_typed_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path());
    let alice = Device::new(tmp.path(), "alice", &server.url());
    let bob = Device::new(tmp.path(), "bob", &server.url());
    alice.json(&["send", "--to", "bob", "before the chat"]);
    bob.json(&["sync"]);

    let mut chat = ChatSession::start(&bob, "alice");
    chat.wait_for("alice: before the chat");
    chat.wait_for("-- online");

    alice.json(&["send", "--to", "bob", "live from alice"]);
    chat.wait_for("alice: live from alice");

    chat.type_line("hello from bob's terminal");
    chat.wait_for("✓ sent: hello from bob's terminal");
    alice.json(&["sync"]);
    assert_eq!(
        texts_for(&alice, "bob"),
        [
            "hello from bob's terminal",
            "live from alice",
            "before the chat"
        ]
    );

    assert_eq!(chat.close(), 0);
}

#[test]
fn chat_keeps_working_offline_and_catches_up() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::start(tmp.path());
    let alice = Device::new(tmp.path(), "alice", &server.url());
    let bob = Device::new(tmp.path(), "bob", &server.url());
    alice.json(&["send", "--to", "bob", "are you there?"]);
    bob.json(&["sync"]);

    let mut chat = ChatSession::start(&bob, "alice");
    chat.wait_for("-- online");
    server.kill();
    chat.wait_for("-- offline");

    chat.type_line("typed while offline");
    chat.wait_for("bob: typed while offline (pending)");
    chat.wait_for("| 1 pending");

    server.restart();
    chat.wait_for("✓ sent: typed while offline");
    chat.wait_for("-- online | 0 pending");
    alice.json(&["sync"]);
    assert_eq!(
        texts_for(&alice, "bob"),
        ["typed while offline", "are you there?"],
        "delivered exactly once"
    );
    assert_eq!(chat.count("typed while offline (pending)"), 1);

    assert_eq!(chat.close(), 0);
}
