//! The README's walkthrough as a test: two users chat, one goes offline (the server is
//! SIGKILLed), sends anyway, comes back; the message is delivered exactly once. JSON is parsed
//! and checked field by field.

use serde_json::Value;

use crate::support::{Device, Server};

fn texts(messages: &Value) -> Vec<&str> {
    messages
        .as_array()
        .expect("a JSON array")
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect()
}

#[test]
fn offline_send_is_queued_then_delivered_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::start(tmp.path());
    let alice = Device::new(tmp.path(), "alice", &server.url());
    let bob = Device::new(tmp.path(), "bob", &server.url());

    // Online: alice writes, bob syncs and reads.
    let hello = alice.json(&["send", "--to", "bob", "Hi Bob!"]);
    assert_eq!(hello["state"], "sent", "{hello}");
    assert!(hello["server_id"].is_u64(), "{hello}");
    // Sent from this device: its id is its local (txn) id, from echo to sent.
    assert_eq!(hello["id"], hello["local_id"]);
    assert_eq!(hello["sender"]["id"], "alice");
    let room = hello["room_id"].as_str().unwrap().to_owned();

    let report = bob.json(&["sync"]);
    assert_eq!(report["online"], true, "{report}");
    assert_eq!(report["new_messages"][&room], 1, "{report}");
    assert_eq!(
        texts(&bob.json(&["messages", "--with", "alice", "--json"])),
        ["Hi Bob!"]
    );

    // bob goes offline: the server dies.
    server.kill();
    let queued = bob.expect(0, &["send", "--to", "alice", "from the tunnel"]);
    let echo = queued.json();
    assert_eq!(echo["state"], "pending", "{echo}");
    assert_eq!(echo["state"], "pending");
    assert!(echo["server_id"].is_null(), "{echo}");
    assert_eq!(echo["id"], echo["local_id"]);
    assert_eq!(echo["room_id"], room.as_str());
    assert!(queued.stderr().contains("queued"), "{}", queued.describe());

    let outbox = bob.json(&["outbox", "--json"]);
    assert_eq!(outbox.as_array().unwrap().len(), 1, "{outbox}");
    assert_eq!(outbox[0]["local_id"], echo["local_id"]);
    assert_eq!(outbox[0]["state"], "pending");
    assert_eq!(outbox[0]["text"], "from the tunnel");

    let offline = bob.expect(3, &["sync"]).json();
    assert_eq!(offline["online"], false, "{offline}");
    assert_eq!(offline["pending"], 1, "{offline}");
    assert_eq!(offline["sent"], 0);

    // Reads work offline, the pending echo merged in its place (newest first).
    let history = bob.json(&["messages", "--with", "alice", "--json"]);
    assert_eq!(texts(&history), ["from the tunnel", "Hi Bob!"]);
    assert_eq!(history[0]["state"], "pending");

    // bob is back.
    server.restart();
    let back = bob.json(&["sync"]);
    assert_eq!(back["online"], true, "{back}");
    assert_eq!(back["sent"], 1, "{back}");
    assert_eq!(back["pending"], 0, "{back}");
    assert_eq!(bob.json(&["outbox", "--json"]), serde_json::json!([]));

    let caught_up = alice.json(&["sync"]);
    assert_eq!(caught_up["new_messages"][&room], 1, "{caught_up}");
    let history = alice.json(&["messages", "--with", "bob", "--json"]);
    assert_eq!(
        texts(&history),
        ["from the tunnel", "Hi Bob!"],
        "exactly once, newest first"
    );
    assert_eq!(history[0]["sender"]["id"], "bob");
    assert_eq!(history[0]["state"], "sent");

    // Nothing is sent twice on later syncs.
    assert_eq!(bob.json(&["sync"])["sent"], 0);
    let again = alice.json(&["sync"]);
    assert_eq!(
        again["new_messages"]
            .get(&room)
            .and_then(Value::as_u64)
            .unwrap_or(0),
        0,
        "{again}"
    );
    let bobs = bob.json(&["messages", "--with", "alice", "--json"]);
    assert_eq!(texts(&bobs), ["from the tunnel", "Hi Bob!"]);
    assert_eq!(bobs[0]["state"], "sent");
    assert_eq!(
        bobs[0]["local_id"], echo["local_id"],
        "the echo became the sent message"
    );
}

#[test]
fn a_discarded_message_is_never_delivered() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::start(tmp.path());
    let alice = Device::new(tmp.path(), "alice", &server.url());
    let bob = Device::new(tmp.path(), "bob", &server.url());
    alice.json(&["send", "--to", "bob", "first"]);

    server.kill();
    let oops = alice.json(&["send", "--to", "bob", "oops, wrong chat"]);
    let id = oops["local_id"].as_str().unwrap();
    let discarded = alice.expect(0, &["discard", id]);
    assert!(
        discarded.stdout().contains("discarded"),
        "{}",
        discarded.describe()
    );
    assert_eq!(alice.json(&["outbox", "--json"]), serde_json::json!([]));
    alice.expect(8, &["discard", id]).one_stderr_line();

    server.restart();
    assert_eq!(alice.json(&["sync"])["sent"], 0);
    bob.json(&["sync"]);
    assert_eq!(
        texts(&bob.json(&["messages", "--with", "alice", "--json"])),
        ["first"]
    );
}

#[test]
fn rooms_and_messages_print_the_shapes_the_apps_get() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path());
    let alice = Device::new(tmp.path(), "alice", &server.url());
    for text in ["one", "two", "three"] {
        alice.json(&["send", "--to", "bob", text]);
    }

    let rooms = alice.json(&["rooms", "--json"]);
    let rooms = rooms.as_array().unwrap();
    assert_eq!(rooms.len(), 1, "{rooms:?}");
    let mut members: Vec<&str> = rooms[0]["member_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    members.sort();
    assert_eq!(members, ["alice", "bob"]);
    assert_eq!(rooms[0]["last_message"]["text"], "three");
    let room = rooms[0]["id"].as_str().unwrap();

    // The core's message shape: id, text, created_at, sender {id, name}, state, parts.
    let page = alice.json(&["messages", "--room", room, "--limit", "2", "--json"]);
    assert_eq!(texts(&page), ["three", "two"]);
    for m in page.as_array().unwrap() {
        assert!(m["id"].is_string() && m["created_at"].is_string(), "{m}");
        assert_eq!(m["sender"]["id"], "alice");
        assert!(m["sender"]["name"].is_string());
        assert_eq!(m["state"], "sent");
        assert_eq!(m["parts"][0]["type"], "text/plain");
    }
    let before = page[1]["server_id"].as_u64().unwrap().to_string();
    assert_eq!(
        texts(&alice.json(&["messages", "--room", room, "--before", &before, "--json"])),
        ["one"]
    );

    // The text form: one line per message, newest first.
    let text = alice.expect(0, &["messages", "--with", "bob"]).stdout();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].ends_with("alice: three"), "{text}");
}

#[test]
fn a_rejected_send_exits_4_and_can_be_retried_or_discarded() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path());
    let alice = Device::new(tmp.path(), "alice", &server.url());

    // The server refuses a message to a room that does not exist: failed for good, exit 4.
    let run = alice.expect(4, &["send", "--room", "rnosuchroom", "to nowhere"]);
    let failed = run.json();
    assert_eq!(failed["state"], "failed", "{failed}");
    assert!(failed["failure_reason"].is_string(), "{failed}");
    let id = failed["local_id"].as_str().unwrap();
    assert!(run
        .one_stderr_line()
        .contains(&format!("chatsync retry {id}")));

    let outbox = alice.json(&["outbox", "--json"]);
    assert_eq!(outbox[0]["state"], "failed", "{outbox}");
    assert_eq!(outbox[0]["attempts"], 1);

    // Retrying sends it again; the server refuses again.
    alice.expect(4, &["retry", id]).one_stderr_line();
    assert_eq!(alice.json(&["outbox", "--json"])[0]["attempts"], 2);
    alice.expect(8, &["retry", "no-such-id"]).one_stderr_line();

    alice.expect(0, &["discard", id]);
    assert_eq!(alice.json(&["outbox", "--json"]), serde_json::json!([]));
}
