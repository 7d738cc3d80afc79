//! History paging both ways with an exact `has_more` at both edges, and the compatibility route.

use reqwest::StatusCode;

use crate::support::{ids, TestServer};

#[tokio::test]
async fn paging_older_and_newer_has_exact_has_more_at_both_edges() {
    let t = TestServer::start().await;
    let alice = t.user("alice").await;
    let room = alice.create_room(&[]).await;
    let sent: Vec<u64> = alice
        .send_many(&room.id, "t", 10)
        .await
        .iter()
        .map(|m| m.id)
        .collect();
    let page = |q: String| {
        let alice = alice.clone();
        let room = room.id.clone();
        async move {
            let body = alice
                .get(&format!("/v1/rooms/{room}/messages?{q}"))
                .await
                .ok();
            (ids(&body["messages"]), body["has_more"].as_bool().unwrap())
        }
    };
    // Newest 4, then walk back: 4 + 4 + 2, has_more exact at the oldest edge.
    assert_eq!(page("limit=4".into()).await, (sent[6..10].to_vec(), true));
    assert_eq!(
        page(format!("limit=4&initial_id={}", sent[6])).await,
        (sent[2..6].to_vec(), true)
    );
    assert_eq!(
        page(format!("limit=4&initial_id={}&direction=older", sent[2])).await,
        (sent[0..2].to_vec(), false)
    );
    // A page that ends exactly at the oldest message: has_more false.
    assert_eq!(
        page(format!("limit=2&initial_id={}", sent[2])).await,
        (sent[0..2].to_vec(), false)
    );
    assert_eq!(page("limit=10".into()).await, (sent.clone(), false));
    // Walk forward: exact at the newest edge.
    assert_eq!(
        page(format!("limit=4&initial_id={}&direction=newer", sent[0])).await,
        (sent[1..5].to_vec(), true)
    );
    assert_eq!(
        page(format!("limit=5&initial_id={}&direction=newer", sent[4])).await,
        (sent[5..10].to_vec(), false)
    );
    assert_eq!(
        page(format!("limit=4&initial_id={}&direction=newer", sent[9])).await,
        (vec![], false)
    );
    // Without initial_id, newer starts from the oldest message.
    assert_eq!(
        page("limit=3&direction=newer".into()).await,
        (sent[0..3].to_vec(), true)
    );
    // Defaults and clamping.
    assert_eq!(page(String::new()).await, (sent.clone(), false));
    assert_eq!(page("limit=1000".into()).await, (sent.clone(), false));
}

#[tokio::test]
async fn history_is_per_room() {
    let t = TestServer::start().await;
    let alice = t.user("alice").await;
    let r1 = alice.create_room(&[]).await;
    let r2 = alice.create_room(&[]).await;
    let a = alice.send(&r1.id, "a", "one").await;
    alice.send(&r2.id, "b", "two").await;
    let c = alice.send(&r1.id, "c", "three").await;
    let body = alice
        .get(&format!("/v1/rooms/{}/messages", r1.id))
        .await
        .ok();
    assert_eq!(ids(&body["messages"]), vec![a.id, c.id]);
    assert_eq!(body["has_more"], false);
}

#[tokio::test]
async fn default_page_size_is_20_and_max_is_100() {
    let t = TestServer::start().await;
    let alice = t.user("alice").await;
    let room = alice.create_room(&[]).await;
    alice.send_many(&room.id, "t", 101).await;
    let body = alice
        .get(&format!("/v1/rooms/{}/messages", room.id))
        .await
        .ok();
    assert_eq!(body["messages"].as_array().unwrap().len(), 20);
    let body = alice
        .get(&format!("/v1/rooms/{}/messages?limit=500", room.id))
        .await
        .ok();
    assert_eq!(body["messages"].as_array().unwrap().len(), 100);
    assert_eq!(body["has_more"], true);
}

#[tokio::test]
async fn malformed_history_queries_are_400() {
    let t = TestServer::start().await;
    let alice = t.user("alice").await;
    let room = alice.create_room(&[]).await;
    for q in [
        "limit=abc",
        "limit=0",
        "limit=-1",
        "direction=sideways",
        "initial_id=x",
    ] {
        alice
            .get(&format!("/v1/rooms/{}/messages?{q}", room.id))
            .await
            .assert_error(StatusCode::BAD_REQUEST, "bad_request");
    }
}

#[tokio::test]
async fn compat_route_walks_forward_without_gaps_newest_first() {
    let t = TestServer::start().await;
    let alice = t.user("alice").await;
    let room = alice.create_room(&[]).await;
    let sent: Vec<u64> = alice
        .send_many(&room.id, "t", 25)
        .await
        .iter()
        .map(|m| m.id)
        .collect();
    let first = alice
        .get(&format!("/messages?room_id={}", room.id))
        .await
        .ok();
    let mut expected: Vec<u64> = sent[0..10].to_vec();
    expected.reverse();
    assert_eq!(ids(&first["messages"]), expected);
    assert_eq!(first.as_object().unwrap().len(), 1, "only `messages`");
    // Walk on from the newest one seen.
    let mut seen = ids(&first["messages"]);
    let mut last = sent[9];
    loop {
        let page = alice
            .get(&format!(
                "/messages?room_id={}&initial_id={last}&limit=7",
                room.id
            ))
            .await
            .ok();
        let page_ids = ids(&page["messages"]);
        if page_ids.is_empty() {
            break;
        }
        assert!(page_ids.windows(2).all(|w| w[0] > w[1]), "newest first");
        last = page_ids[0];
        seen.extend(page_ids);
    }
    seen.sort();
    assert_eq!(seen, sent, "every message exactly once");
    alice
        .get("/messages")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad_request");
    alice
        .get("/messages?room_id=nope")
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
}
