//! The connection guards: header, body and idle timeouts and the connection cap. They run on
//! tokio's paused clock here (`GuardClock::Runtime` with `start_paused`), so a 10-second timeout
//! takes no real time and the moment it fires is exact. The real binary under slow clients and
//! few file descriptors: binary.rs.

use std::time::Duration;

use chatsync_server::{ConnectionLimits, GuardClock, ServerConfig};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::support::TestServer;

const HEADER: Duration = Duration::from_secs(10);
const BODY: Duration = Duration::from_secs(7);
const IDLE: Duration = Duration::from_secs(60);

fn guarded(c: &mut ServerConfig) {
    c.guard_clock = GuardClock::Runtime;
    c.limits = ConnectionLimits {
        header_timeout: HEADER,
        body_timeout: BODY,
        idle_timeout: IDLE,
        max_connections: None,
    };
}

async fn start(configure: impl FnOnce(&mut ServerConfig)) -> TestServer {
    TestServer::start_in(tempfile::tempdir().unwrap(), configure).await
}

/// Reads until the server closes the connection (bounded by a virtual minute past every guard).
async fn read_to_close(s: &mut TcpStream) -> String {
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(600), s.read_to_end(&mut got))
        .await
        .expect("the server closed the connection")
        .unwrap();
    String::from_utf8_lossy(&got).into_owned()
}

/// Asserts one answer with this status and the protocol's JSON error body with this code.
#[track_caller]
fn assert_json_error(answer: &str, status: u16, code: &str) {
    assert!(
        answer.starts_with(&format!("HTTP/1.1 {status} ")),
        "expected {status}: {answer:?}"
    );
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    let body: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body:?}"));
    assert_eq!(body["error"], code, "{body}");
    assert!(body["error_description"].is_string(), "{body}");
}

/// Reads one answer of a kept-alive connection (head and a `content-length` body).
async fn read_one_answer(s: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).await.unwrap(), 1, "closed mid-head");
        got.push(byte[0]);
    }
    let head = String::from_utf8(got).unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await.unwrap();
    head + &String::from_utf8(body).unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_stalled_request_head_gets_a_json_408_at_the_header_timeout_and_is_closed() {
    let t = start(guarded).await;
    let addr = t.server().addr();
    // Many at once, like the 3,000 of the report, each with half a head.
    let mut stalled = Vec::new();
    for i in 0..300 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("GET /v1/sync?n={i} HTTP/1.1\r\nhost: x\r\nauthoriz").as_bytes())
            .await
            .unwrap();
        stalled.push(s);
    }
    let started = Instant::now();
    for mut s in stalled {
        assert_json_error(&read_to_close(&mut s).await, 408, "request_timeout");
    }
    let took = started.elapsed();
    assert!(
        took >= HEADER && took < HEADER + Duration::from_secs(1),
        "408 after {took:?}"
    );
    // A head dripped a byte at a time is bounded by the same deadline, not reset by each byte.
    let mut s = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    for b in b"GET /health HTTP/1.1\r\nx-slow: ".iter().cycle() {
        if started.elapsed() > HEADER + Duration::from_secs(1) || s.write_all(&[*b]).await.is_err()
        {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert_json_error(&read_to_close(&mut s).await, 408, "request_timeout");
    // The server still answers.
    let alice = t.user("alice").await;
    alice.get("/v1/rooms").await.ok();
}

#[tokio::test(start_paused = true)]
async fn idle_connections_are_closed_silently_but_parked_long_polls_are_not() {
    let t = start(guarded).await;
    let addr = t.server().addr();
    // A connection that never sends a byte: closed at the idle timeout, without an answer.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    assert_eq!(read_to_close(&mut silent).await, "");
    let took = started.elapsed();
    assert!(
        took >= IDLE && took < IDLE + Duration::from_secs(1),
        "{took:?}"
    );

    // A kept-alive connection: idle time counts from the end of its last answer.
    let alice = t.user("alice").await;
    let mut kept = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "GET /v1/sync HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\n\r\n",
        alice.token
    );
    kept.write_all(head.as_bytes()).await.unwrap();
    let answer = read_one_answer(&mut kept).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let since: Value = serde_json::from_str(answer.split_once("\r\n\r\n").unwrap().1).unwrap();
    let since = since["next_batch"].as_str().unwrap().to_owned();
    tokio::time::sleep(IDLE / 2).await;
    // ...so a request half way through the idle time is served, and a long-poll parked longer
    // than the idle (and header) timeouts is answered when its own time is up.
    let poll = format!(
        "GET /v1/sync?since={since}&timeout_ms=30000 HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\n\r\n",
        alice.token
    );
    kept.write_all(poll.as_bytes()).await.unwrap();
    let asked = Instant::now();
    let answer = read_one_answer(&mut kept).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with(r#""rooms":{}}"#), "{answer}");
    assert!(asked.elapsed() >= Duration::from_secs(30));
    let idle_from = Instant::now();
    assert_eq!(read_to_close(&mut kept).await, "");
    let idle = idle_from.elapsed();
    assert!(
        idle >= IDLE && idle < IDLE + Duration::from_secs(1),
        "{idle:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_body_that_does_not_arrive_in_time_gets_a_json_408_and_is_closed() {
    let t = start(guarded).await;
    let addr = t.server().addr();
    let alice = t.user("alice").await;
    let room = alice.create_room(&[]).await;
    let put = |extra: &str| {
        format!(
            "PUT /v1/rooms/{}/messages/t1 HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\n{extra}\r\n",
            room.id, alice.token
        )
    };
    // Part of an announced body, then nothing.
    let mut short = TcpStream::connect(addr).await.unwrap();
    short
        .write_all(format!("{}{{\"parts\":", put("content-length: 100\r\n")).as_bytes())
        .await
        .unwrap();
    // A chunked body announcing a huge chunk, a few bytes of it, then nothing.
    let mut chunked = TcpStream::connect(addr).await.unwrap();
    chunked
        .write_all(
            format!(
                "{}100000\r\n{{\"parts\"",
                put("transfer-encoding: chunked\r\n")
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let started = Instant::now();
    for s in [&mut short, &mut chunked] {
        assert_json_error(&read_to_close(s).await, 408, "request_timeout");
    }
    let took = started.elapsed();
    assert!(
        took >= BODY - Duration::from_millis(10) && took < BODY + Duration::from_secs(1),
        "{took:?}"
    );

    // A body dripped a byte per second: the deadline is for the whole body.
    let body = br#"{"parts":[{"type":"text/plain","content":"slow but steady, too slow"}]}"#;
    let mut drip = TcpStream::connect(addr).await.unwrap();
    drip.write_all(put(&format!("content-length: {}\r\n", body.len())).as_bytes())
        .await
        .unwrap();
    let started = Instant::now();
    for b in body.iter() {
        if drip.write_all(&[*b]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        if started.elapsed() > BODY + Duration::from_secs(2) {
            break;
        }
    }
    assert_json_error(&read_to_close(&mut drip).await, 408, "request_timeout");
    // Nothing was stored, and a body in time is.
    let history = alice
        .get(&format!("/v1/rooms/{}/messages", room.id))
        .await
        .ok();
    assert_eq!(history["messages"].as_array().unwrap().len(), 0);
    alice.send(&room.id, "t2", "in time").await;
}

#[tokio::test(start_paused = true)]
async fn at_the_cap_an_idle_connection_makes_room_and_busy_ones_get_a_json_503() {
    const CAP: usize = 4;
    let t = start(|c| {
        guarded(c);
        c.limits.max_connections = Some(CAP);
    })
    .await;
    let addr = t.server().addr();
    let health = b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";
    // The cap is full of idle connections: a newcomer is served, one idle connection is closed.
    let mut idle = Vec::new();
    for _ in 0..CAP {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    wait_for_connections(&t, CAP).await;
    let mut newcomer = TcpStream::connect(addr).await.unwrap();
    newcomer.write_all(health).await.unwrap();
    assert!(read_to_close(&mut newcomer)
        .await
        .starts_with("HTTP/1.1 200"));
    let mut closed = 0;
    for s in &mut idle {
        let mut byte = [0u8; 1];
        // A closed one reads end-of-stream at once; an open one would wait for the idle timeout.
        if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_secs(1), s.read(&mut byte)).await {
            closed += 1;
        }
    }
    assert_eq!(closed, 1, "exactly one idle connection made room");
    drop(idle);
    assert_eq!(t.server().connections_refused_and_evicted().1, 1);
    wait_for_connections(&t, 0).await;

    // The cap is full of parked long-polls (busy, not idle): a newcomer gets a 503.
    let alice = t.user("alice").await;
    let since = alice.get("/v1/sync").await.ok()["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();
    // (alice's client keeps its connection alive, idle: the parked ones make it leave.)
    let mut parked = Vec::new();
    for _ in 0..CAP {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!(
                "GET /v1/sync?since={since}&timeout_ms=30000 HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\n\r\n",
                alice.token
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        parked.push(s);
    }
    crate::sync::wait_until_parked(&t, CAP).await;
    let mut refused = TcpStream::connect(addr).await.unwrap();
    let answer = read_to_close(&mut refused).await;
    assert_json_error(&answer, 503, "unavailable");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: 1"),
        "{answer}"
    );
    assert_eq!(t.server().connections_refused_and_evicted().0, 1);
    // The parked ones are unharmed: answered when their time is up.
    for s in &mut parked {
        assert!(read_one_answer(s).await.starts_with("HTTP/1.1 200"));
    }
}

/// Waits (bounded, virtual time) until the server holds `n` connections.
async fn wait_for_connections(t: &TestServer, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while t.server().open_connections() != n {
        assert!(
            Instant::now() < deadline,
            "{} connections, not {n}",
            t.server().open_connections()
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
