//! The chat model of issue 14 end to end, one test per command (`edit`, `delete`, `react`,
//! `read`, `typing`): what the other user (or the user's other device) sees after a sync, what
//! is refused and proven to change nothing, and the same with the server SIGKILLed (the command
//! exits 0, the change waits in the outbox and lands once the server is back and a sync runs).
//! The JSON names checked are the ones the issue fixes: `edited`, `deleted`, `reactions`
//! (key -> `{count, me}`), `read_by`, and `unread` in `rooms --json`.

use std::path::Path;

use serde_json::{json, Value};

use crate::support::{snapshot, ChatSession, Device, Server};

/// The messages of the direct room with `with`, newest first.
fn history(device: &Device, with: &str) -> Vec<Value> {
    device
        .json(&["messages", "--with", with, "--json"])
        .as_array()
        .expect("a JSON array")
        .clone()
}

/// The one message of the direct room with `with` whose server id is `server_id`.
fn by_server_id(device: &Device, with: &str, server_id: &Value) -> Value {
    let all = history(device, with);
    let found: Vec<&Value> = all
        .iter()
        .filter(|m| &m["server_id"] == server_id)
        .collect();
    assert_eq!(found.len(), 1, "server id {server_id} in {all:?}");
    found[0].clone()
}

/// `id` as a string argument (message ids are strings in JSON).
fn id_of(message: &Value) -> String {
    message["id"].as_str().expect("an id").to_owned()
}

/// A sync that must reach the server; returns its report.
fn sync(device: &Device) -> Value {
    let report = device.json(&["sync"]);
    assert_eq!(report["online"], true, "{report}");
    report
}

/// A second device of `user` (its own store), as a laptop next to a phone.
fn other_device(root: &Path, user: &str, server: &str) -> Device {
    Device {
        user: user.to_owned(),
        data: root.join(format!("{user}-laptop")),
        server: server.to_owned(),
    }
}

/// `rooms --json` of a device that holds exactly one room; returns it.
fn only_room(device: &Device) -> Value {
    let rooms = device.json(&["rooms", "--json"]);
    let rooms = rooms.as_array().expect("a JSON array");
    assert_eq!(rooms.len(), 1, "{rooms:?}");
    rooms[0].clone()
}

#[test]
fn an_edit_is_seen_by_the_other_user_and_only_the_sender_may_edit() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path());
    let alice = Device::new(tmp.path(), "alice", &server.url());
    let bob = Device::new(tmp.path(), "bob", &server.url());
    let sent = alice.json(&["send", "--to", "bob", "helo"]);
    assert_eq!(sent["edited"], false, "{sent}");
    sync(&bob);

    let edited = alice.json(&["edit", &id_of(&sent), "hello"]);
    assert_eq!(edited["text"], "hello", "{edited}");
    assert!(edited["edited"].is_string(), "{edited}");
    assert_eq!(
        edited["pending_change"], false,
        "delivered at once: {edited}"
    );
    assert_eq!(alice.json(&["outbox", "--json"]), json!([]));

    sync(&bob);
    let seen = by_server_id(&bob, "alice", &sent["server_id"]);
    assert_eq!(seen["text"], "hello", "{seen}");
    assert_eq!(seen["parts"][0]["content"], "hello", "{seen}");
    assert_eq!(
        seen["edited"], edited["edited"],
        "the server's edit time on both"
    );
    assert_eq!(
        history(&bob, "alice").len(),
        1,
        "an edit is not a new message"
    );

    // bob may not edit alice's message: refused before anything is queued, nothing changes.
    let before = snapshot(&bob.data);
    let run = bob.expect(2, &["edit", &id_of(&seen), "hijacked"]);
    let line = run.one_stderr_line();
    assert!(line.contains("only the sender"), "{line}");
    assert!(run.stdout().is_empty(), "{}", run.describe());
    assert_eq!(
        snapshot(&bob.data),
        before,
        "a refused edit changed the store"
    );
    sync(&alice);
    assert_eq!(
        by_server_id(&alice, "bob", &sent["server_id"])["text"],
        "hello"
    );
}

#[test]
fn an_edit_made_offline_lands_when_the_server_is_back() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::start(tmp.path());
    let alice = Device::new(tmp.path(), "alice", &server.url());
    let bob = Device::new(tmp.path(), "bob", &server.url());
    let sent = alice.json(&["send", "--to", "bob", "see you at 5"]);
    sync(&bob);

    server.kill();
    let run = alice.expect(0, &["edit", &id_of(&sent), "see you at 6"]);
    let shown = run.json();
    assert_eq!(shown["text"], "see you at 6", "shown at once: {shown}");
    assert_eq!(shown["pending_change"], true, "{shown}");
    assert!(run.stderr().contains("queued"), "{}", run.describe());
    assert_eq!(
        alice.json(&["outbox", "--json"]).as_array().unwrap().len(),
        1
    );
    alice.expect(3, &["sync"]);

    server.restart();
    sync(&alice);
    assert_eq!(alice.json(&["outbox", "--json"]), json!([]));
    let mine = by_server_id(&alice, "bob", &sent["server_id"]);
    assert_eq!(mine["pending_change"], false, "{mine}");
    assert!(mine["edited"].is_string(), "{mine}");

    sync(&bob);
    let seen = by_server_id(&bob, "alice", &sent["server_id"]);
    assert_eq!(seen["text"], "see you at 6", "{seen}");
    assert_eq!(seen["edited"], mine["edited"], "{seen}");
}

#[test]
fn editing_a_message_still_queued_rewrites_the_send_and_one_message_arrives() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::start(tmp.path());
    let alice = Device::new(tmp.path(), "alice", &server.url());
    let bob = Device::new(tmp.path(), "bob", &server.url());
    alice.json(&["send", "--to", "bob", "first"]); // the room exists from here on

    server.kill();
    let draft = alice.json(&["send", "--to", "bob", "draft wiht a typo"]);
    assert_eq!(draft["state"], "pending", "{draft}");
    let local_id = id_of(&draft);
    let rewritten = alice.json(&["edit", &local_id, "draft with no typo"]);
    assert_eq!(rewritten["text"], "draft with no typo", "{rewritten}");
    assert_eq!(rewritten["state"], "pending", "{rewritten}");
    let outbox = alice.json(&["outbox", "--json"]);
    assert_eq!(
        outbox.as_array().unwrap().len(),
        1,
        "one send, no edit: {outbox}"
    );
    assert_eq!(outbox[0]["local_id"], local_id.as_str());
    assert_eq!(outbox[0]["text"], "draft with no typo");

    server.restart();
    assert_eq!(sync(&alice)["sent"], 1);
    sync(&bob);
    let seen = history(&bob, "alice");
    let texts: Vec<&str> = seen.iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert_eq!(
        texts,
        ["draft with no typo", "first"],
        "exactly one message, new text"
    );
    assert_eq!(
        seen[0]["edited"], false,
        "the server never had the old text: {seen:?}"
    );
}

#[test]
fn a_deletion_leaves_a_tombstone_on_the_other_device_and_works_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::start(tmp.path());
    let alice = Device::new(tmp.path(), "alice", &server.url());
    let bob = Device::new(tmp.path(), "bob", &server.url());
    let oops = alice.json(&["send", "--to", "bob", "wrong chat, sorry"]);
    let later = alice.json(&["send", "--to", "bob", "deleted while offline"]);
    let kept = alice.json(&["send", "--to", "bob", "kept"]);
    sync(&bob);

    let gone = alice.json(&["delete", &id_of(&oops)]);
    assert_eq!(gone["deleted"], true, "{gone}");
    assert_eq!(gone["text"], "", "{gone}");
    sync(&bob);
    let tomb = by_server_id(&bob, "alice", &oops["server_id"]);
    assert_eq!(tomb["deleted"], true, "{tomb}");
    assert_eq!(tomb["text"], "", "{tomb}");
    assert_eq!(tomb["parts"], json!([]), "no content kept: {tomb}");
    assert_eq!(
        history(&bob, "alice").len(),
        3,
        "the tombstone keeps its place"
    );

    // bob may not delete alice's message.
    let before = snapshot(&bob.data);
    let line = bob
        .expect(
            2,
            &[
                "delete",
                &id_of(&by_server_id(&bob, "alice", &kept["server_id"])),
            ],
        )
        .one_stderr_line();
    assert!(line.contains("only the sender"), "{line}");
    assert_eq!(
        snapshot(&bob.data),
        before,
        "a refused delete changed the store"
    );

    // Offline: queued, shown at once, delivered after the restart.
    server.kill();
    let queued = alice.json(&["delete", &id_of(&later)]);
    assert_eq!(queued["deleted"], true, "{queued}");
    assert_eq!(queued["pending_change"], true, "{queued}");
    assert_eq!(
        alice.json(&["outbox", "--json"]).as_array().unwrap().len(),
        1
    );
    server.restart();
    sync(&alice);
    assert_eq!(alice.json(&["outbox", "--json"]), json!([]));
    sync(&bob);
    let tomb = by_server_id(&bob, "alice", &later["server_id"]);
    assert_eq!(tomb["deleted"], true, "{tomb}");
    assert_eq!(tomb["text"], "", "{tomb}");
    let kept_seen = by_server_id(&bob, "alice", &kept["server_id"]);
    assert_eq!(kept_seen["deleted"], false, "{kept_seen}");
    assert_eq!(kept_seen["text"], "kept");

    // A message deleted while still queued is never sent.
    server.kill();
    let never = alice.json(&["send", "--to", "bob", "never sent"]);
    let run = alice.expect(0, &["delete", &id_of(&never)]);
    assert!(
        run.stdout().contains("deleted before it was sent"),
        "{}",
        run.describe()
    );
    assert_eq!(alice.json(&["outbox", "--json"]), json!([]));
    server.restart();
    assert_eq!(sync(&alice)["sent"], 0);
    sync(&bob);
    assert_eq!(history(&bob, "alice").len(), 3, "nothing new arrived");
}

#[test]
fn reactions_count_per_key_with_me_and_toggle_off_online_and_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::start(tmp.path());
    let alice = Device::new(tmp.path(), "alice", &server.url());
    let bob = Device::new(tmp.path(), "bob", &server.url());
    let sent = alice.json(&["send", "--to", "bob", "lunch?"]);
    let alices_id = id_of(&sent);
    sync(&bob);
    let bobs_id = id_of(&by_server_id(&bob, "alice", &sent["server_id"]));

    let reacted = bob.json(&["react", &bobs_id, "👍"]);
    assert_eq!(
        reacted["reactions"],
        json!({"👍": {"count": 1, "me": true}}),
        "{reacted}"
    );
    sync(&alice);
    assert_eq!(
        by_server_id(&alice, "bob", &sent["server_id"])["reactions"],
        json!({"👍": {"count": 1, "me": false}})
    );

    // alice reacts with the same key on her own message: one key, two members.
    let both = alice.json(&["react", &alices_id, "👍"]);
    assert_eq!(
        both["reactions"],
        json!({"👍": {"count": 2, "me": true}}),
        "{both}"
    );
    sync(&bob);
    assert_eq!(
        by_server_id(&bob, "alice", &sent["server_id"])["reactions"],
        json!({"👍": {"count": 2, "me": true}})
    );

    // Again removes it.
    let off = bob.json(&["react", &bobs_id, "👍"]);
    assert_eq!(
        off["reactions"],
        json!({"👍": {"count": 1, "me": false}}),
        "{off}"
    );
    sync(&alice);
    assert_eq!(
        by_server_id(&alice, "bob", &sent["server_id"])["reactions"],
        json!({"👍": {"count": 1, "me": true}})
    );

    // Offline: on then off sends nothing; on alone lands after the restart.
    server.kill();
    let on = bob.json(&["react", &bobs_id, "🎉"]);
    assert_eq!(
        on["reactions"]["🎉"],
        json!({"count": 1, "me": true}),
        "{on}"
    );
    assert_eq!(on["pending_change"], true, "{on}");
    let back_off = bob.json(&["react", &bobs_id, "🎉"]);
    assert!(back_off["reactions"].get("🎉").is_none(), "{back_off}");
    assert_eq!(
        bob.json(&["outbox", "--json"]),
        json!([]),
        "on+off cancel out"
    );
    let fire = bob.json(&["react", &bobs_id, "🔥"]);
    assert_eq!(
        fire["reactions"]["🔥"],
        json!({"count": 1, "me": true}),
        "{fire}"
    );
    assert_eq!(bob.json(&["outbox", "--json"]).as_array().unwrap().len(), 1);

    server.restart();
    sync(&bob);
    assert_eq!(bob.json(&["outbox", "--json"]), json!([]));
    let bobs_view = by_server_id(&bob, "alice", &sent["server_id"]);
    assert_eq!(bobs_view["pending_change"], false, "{bobs_view}");
    sync(&alice);
    assert_eq!(
        by_server_id(&alice, "bob", &sent["server_id"])["reactions"],
        json!({"👍": {"count": 1, "me": true}, "🔥": {"count": 1, "me": false}}),
        "🎉 never reached the server"
    );
    assert_eq!(
        bobs_view["reactions"],
        json!({"👍": {"count": 1, "me": false}, "🔥": {"count": 1, "me": true}})
    );
}

#[test]
fn a_read_receipt_reaches_the_sender_and_clears_unread_on_every_device_of_the_reader() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::start(tmp.path());
    let alice = Device::new(tmp.path(), "alice", &server.url());
    let phone = Device::new(tmp.path(), "bob", &server.url());
    let laptop = other_device(tmp.path(), "bob", &server.url());
    let first = alice.json(&["send", "--to", "bob", "one"]);
    let second = alice.json(&["send", "--to", "bob", "two"]);
    sync(&phone);
    sync(&laptop);
    assert_eq!(only_room(&phone)["unread"], 2);
    assert_eq!(only_room(&laptop)["unread"], 2);
    assert_eq!(
        only_room(&alice)["unread"],
        0,
        "your own messages are not unread"
    );

    let room = phone.json(&["read", "--with", "alice"]);
    assert_eq!(room["unread"], 0, "{room}");
    assert_eq!(only_room(&phone)["unread"], 0);
    sync(&laptop);
    assert_eq!(
        only_room(&laptop)["unread"],
        0,
        "the other device of the reader"
    );

    sync(&alice);
    for sent in [&first, &second] {
        let m = by_server_id(&alice, "bob", &sent["server_id"]);
        assert_eq!(m["read_by"], json!(["bob"]), "{m}");
    }

    // Offline: the phone shows it read at once; the receipt lands after the restart.
    let third = alice.json(&["send", "--to", "bob", "three"]);
    sync(&phone);
    sync(&laptop);
    assert_eq!(only_room(&phone)["unread"], 1);
    server.kill();
    let run = phone.expect(0, &["read", "--with", "alice"]);
    assert_eq!(run.json()["unread"], 0, "{}", run.describe());
    assert!(run.stderr().contains("queued"), "{}", run.describe());
    assert_eq!(only_room(&phone)["unread"], 0);
    let outbox = phone.json(&["outbox", "--json"]);
    assert_eq!(outbox.as_array().unwrap().len(), 1, "{outbox}");
    assert_eq!(outbox[0]["kind"], "receipt", "{outbox}");

    server.restart();
    sync(&phone);
    assert_eq!(phone.json(&["outbox", "--json"]), json!([]));
    sync(&laptop);
    assert_eq!(only_room(&laptop)["unread"], 0);
    assert_eq!(only_room(&phone)["unread"], 0);
    sync(&alice);
    let m = by_server_id(&alice, "bob", &third["server_id"]);
    assert_eq!(m["read_by"], json!(["bob"]), "{m}");
}

#[test]
fn typing_shows_in_the_other_users_chat_and_is_never_queued() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::start(tmp.path());
    let alice = Device::new(tmp.path(), "alice", &server.url());
    let bob = Device::new(tmp.path(), "bob", &server.url());
    alice.json(&["send", "--to", "bob", "hi"]);
    sync(&bob);

    let mut chat = ChatSession::start(&bob, "alice");
    chat.wait_for("-- online");
    alice.expect(0, &["typing", "--with", "bob"]);
    chat.wait_for("-- alice typing --");
    alice.expect(0, &["typing", "--with", "bob", "--stop"]);
    chat.wait_for("-- nobody is typing --");
    assert_eq!(chat.close(), 0);

    // Offline: now or not at all, so it fails (exit 3, one line) and queues nothing.
    server.kill();
    let before = snapshot(&alice.data);
    let line = alice
        .expect(3, &["typing", "--with", "bob"])
        .one_stderr_line();
    assert!(line.contains("typing"), "{line}");
    assert_eq!(
        snapshot(&alice.data),
        before,
        "typing offline changed the store"
    );
}
