//! The reference server against hostile input, sent as raw bytes (an HTTP library would clean
//! most of it up first): path tricks (`../`, `%2e%2e`, `%2F`, NUL, very long ids), huge and
//! negative numbers in queries, deep or odd JSON, forged tokens (alg none, another algorithm, a
//! bad signature, expired, not yet valid), header tricks. Every answer is a documented status with
//! the protocol's JSON error body; never a 500, never a crash (the server answers `/health`
//! after each case). Complements server/tests/integration/errors.rs and auth.rs, which cover the
//! plain cases.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chatsync_server::{AuthMode, ServerConfig};
use chatsync_tests::http::Harness;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An answer read off the wire.
#[derive(Debug)]
struct Raw {
    status: u16,
    body: String,
}

/// Sends `request` (raw bytes) and reads the answer to the end (the request says close).
async fn raw(addr: std::net::SocketAddr, request: &[u8]) -> Raw {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut got)).await;
    assert!(
        read.is_ok(),
        "no answer within 20 s to {:?}",
        String::from_utf8_lossy(&request[..request.len().min(200)])
    );
    let text = String::from_utf8_lossy(&got).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not HTTP: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Raw { status, body }
}

fn request(method: &str, target: &str, token: Option<&str>, body: Option<&[u8]>) -> Vec<u8> {
    let mut r = format!("{method} {target} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n");
    if let Some(t) = token {
        r += &format!("authorization: Bearer {t}\r\n");
    }
    let mut bytes = match body {
        Some(b) => {
            r += &format!(
                "content-type: application/json\r\ncontent-length: {}\r\n\r\n",
                b.len()
            );
            let mut v = r.into_bytes();
            v.extend_from_slice(b);
            v
        }
        None => (r + "\r\n").into_bytes(),
    };
    bytes.shrink_to_fit();
    bytes
}

/// The documented statuses and their codes (docs/protocol.md, Errors).
fn documented(status: u16) -> Option<&'static str> {
    Some(match status {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        408 => "request_timeout",
        413 => "payload_too_large",
        414 => "uri_too_long",
        431 => "request_header_fields_too_large",
        503 => "unavailable",
        _ => return None,
    })
}

/// Asserts a documented error answer whose status is one of `allowed`.
fn assert_documented(what: &str, a: &Raw, allowed: &[u16]) {
    assert!(
        allowed.contains(&a.status),
        "{what}: status {} not in {allowed:?}: {}",
        a.status,
        a.body
    );
    let code =
        documented(a.status).unwrap_or_else(|| panic!("{what}: undocumented status {}", a.status));
    let body: Value = serde_json::from_str(&a.body)
        .unwrap_or_else(|e| panic!("{what}: body not JSON ({e}): {:?}", a.body));
    assert_eq!(body["error"], code, "{what}: {body}");
    assert!(body["error_description"].is_string(), "{what}: {body}");
}

struct Scene {
    server: chatsync_server::RunningServer,
    alice: String,
    room: String,
    _dir: tempfile::TempDir,
}

async fn scene() -> Scene {
    let dir = tempfile::tempdir().unwrap();
    let server = chatsync_server::start(ServerConfig::for_tests(dir.path().join("s.db")))
        .await
        .unwrap();
    let h = Harness::new(server.url());
    let alice = h.token("alice").await.unwrap();
    let room = h
        .create_room(&alice, "r", &["bob".into()])
        .await
        .unwrap()
        .id;
    Scene {
        server,
        alice,
        room,
        _dir: dir,
    }
}

async fn assert_alive(s: &Scene, after: &str) {
    let a = raw(s.server.addr(), &request("GET", "/health", None, None)).await;
    assert_eq!(a.status, 200, "the server stopped answering after {after}");
}

#[tokio::test]
async fn path_tricks_are_documented_errors() {
    let s = scene().await;
    let long = "a".repeat(10_000);
    let room = &s.room;
    let cases: Vec<(String, &str, &[u16])> = vec![
        ("/v1/rooms/../rooms".into(), "GET", &[400, 403, 404]),
        (
            "/v1/rooms/%2e%2e/%2e%2e/v1/rooms".into(),
            "GET",
            &[400, 404],
        ),
        (
            "/v1/rooms/..%2F..%2Fetc%2Fpasswd/messages".into(),
            "GET",
            &[400, 404],
        ),
        ("/v1/users/..".into(), "GET", &[400, 404]),
        ("/v1/users/%2e%2e".into(), "GET", &[400, 404]),
        ("/v1/users/a%2Fb".into(), "GET", &[400, 404]),
        ("/v1/users/a%00b".into(), "GET", &[400, 404]),
        ("/v1/users/%ff%fe".into(), "GET", &[400, 404]),
        ("/v1/users/%".into(), "GET", &[400, 404]),
        (format!("/v1/users/{long}"), "GET", &[400, 404]),
        (format!("/v1/rooms/{long}"), "GET", &[400, 404]),
        (format!("/v1/rooms/{long}/messages"), "GET", &[400, 404]),
        (
            format!("/v1/rooms/{room}/messages/{long}"),
            "PUT",
            &[400, 404],
        ),
        (
            format!("/v1/rooms/{room}/messages/..%2F..%2Fx"),
            "PUT",
            &[400, 404],
        ),
        (format!("/v1/rooms/{room}/messages/%20"), "PUT", &[400, 404]),
        ("//v1//rooms".into(), "GET", &[404]),
        ("/v1/rooms/".into(), "GET", &[404]),
        ("/v1/sync/../../health".into(), "GET", &[400, 404]),
        ("/V1/SYNC".into(), "GET", &[404]),
        (format!("/{}", "x/".repeat(2_000)), "GET", &[404]),
    ];
    let body = json!({"parts": [{"type": "text/plain", "content": "x"}]}).to_string();
    for (target, method, allowed) in cases {
        let b = (method == "PUT").then_some(body.as_bytes());
        let a = raw(
            s.server.addr(),
            &request(method, &target, Some(&s.alice), b),
        )
        .await;
        let what = format!("{method} {}", &target[..target.len().min(80)]);
        assert_documented(&what, &a, allowed);
    }
    assert_alive(&s, "path tricks").await;
}

#[tokio::test]
async fn huge_and_odd_query_values_are_400_or_clamped() {
    let s = scene().await;
    let room = &s.room;
    let bad = [
        format!("/v1/rooms/{room}/messages?limit=18446744073709551616"),
        format!("/v1/rooms/{room}/messages?limit=-1"),
        format!("/v1/rooms/{room}/messages?limit=0"),
        format!("/v1/rooms/{room}/messages?limit=1e3"),
        format!("/v1/rooms/{room}/messages?initial_id=99999999999999999999999"),
        format!("/v1/rooms/{room}/messages?initial_id=-5"),
        format!("/v1/rooms/{room}/messages?direction=%00"),
        format!("/v1/rooms/{room}/messages?limit=%ff"),
        "/v1/sync?timeout_ms=-1".to_owned(),
        "/v1/sync?timeout_ms=99999999999999999999999".to_owned(),
        "/v1/sync?limit=0".to_owned(),
        format!("/v1/sync?since={}", "9".repeat(5_000)),
        "/v1/sync?since=%00%01".to_owned(),
        "/v1/sync?since=s-1_-1".to_owned(),
        format!("/messages?room_id={room}&limit=-3"),
        "/messages?room_id=".to_owned(),
        "/messages".to_owned(),
    ];
    for target in &bad {
        let a = raw(
            s.server.addr(),
            &request("GET", target, Some(&s.alice), None),
        )
        .await;
        assert_documented(&target[..target.len().min(80)], &a, &[400, 404]);
    }
    // Huge but well-formed values are clamped, not errors.
    for target in [
        format!("/v1/rooms/{room}/messages?limit=4294967295"),
        format!("/v1/rooms/{room}/messages?initial_id=18446744073709551615"),
        "/v1/sync?limit=4294967295&timeout_ms=0".to_owned(),
        format!("/messages?room_id={room}&limit=4294967295&initial_id=18446744073709551615"),
    ] {
        let a = raw(
            s.server.addr(),
            &request("GET", &target, Some(&s.alice), None),
        )
        .await;
        assert_eq!(a.status, 200, "{target}: {}", a.body);
    }
    // The largest timeout is clamped: a request for a day's long-poll does not hold a day.
    // (Answered by the graceful shutdown below at the latest; not waited for here.)
    assert_alive(&s, "query values").await;
}

#[tokio::test]
async fn malformed_oversized_and_overlong_heads_get_the_json_error_body() {
    let s = scene().await;
    let long_target = format!(
        "GET /v1/sync?since={} HTTP/1.1\r\nhost: x\r\n\r\n",
        "9".repeat(20_000)
    );
    let many_fields: String = (0..101).map(|i| format!("x-{i}: y\r\n")).collect();
    let many_fields = format!("GET /health HTTP/1.1\r\nhost: x\r\n{many_fields}\r\n");
    let huge_field = format!(
        "GET /health HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
        "b".repeat(70_000)
    );
    let put = |headers: &str, body: &str| {
        format!("POST /v1/token HTTP/1.1\r\nhost: x\r\n{headers}\r\n{body}").into_bytes()
    };
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "a control byte in the method",
            b"G\x01T / HTTP/1.1\r\nhost: x\r\n\r\n".to_vec(),
            400,
        ),
        (
            "spaces in the target",
            b"GET /a b c HTTP/1.1\r\nhost: x\r\n\r\n".to_vec(),
            400,
        ),
        (
            "a DEL in the target",
            b"GET /a\x7f HTTP/1.1\r\nhost: x\r\n\r\n".to_vec(),
            400,
        ),
        (
            "HTTP/9.9",
            b"GET / HTTP/9.9\r\nhost: x\r\n\r\n".to_vec(),
            400,
        ),
        (
            "an HTTP/2 preface",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
            400,
        ),
        (
            "not HTTP at all",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n".to_vec(),
            400,
        ),
        (
            "a space in a field name",
            b"GET / HTTP/1.1\r\nbad field: x\r\n\r\n".to_vec(),
            400,
        ),
        (
            "a control byte in a field value",
            b"GET / HTTP/1.1\r\nx: a\x01b\r\n\r\n".to_vec(),
            400,
        ),
        ("a 20,000-byte target", long_target.into_bytes(), 414),
        ("101 header fields", many_fields.into_bytes(), 431),
        ("a 70 KiB header field", huge_field.into_bytes(), 431),
        (
            "a malformed Content-Length",
            put("content-length: 12a\r\n", ""),
            400,
        ),
        (
            "two Content-Lengths",
            put("content-length: 1\r\ncontent-length: 2\r\n", "{}"),
            400,
        ),
        (
            "Transfer-Encoding and Content-Length",
            put(
                "transfer-encoding: chunked\r\ncontent-length: 5\r\n",
                "0\r\n\r\n",
            ),
            400,
        ),
        (
            "a Transfer-Encoding other than chunked",
            put("transfer-encoding: gzip\r\n", ""),
            400,
        ),
        (
            "a garbled chunked body",
            put("transfer-encoding: chunked\r\n", "zz\r\n{}\r\n0\r\n\r\n"),
            400,
        ),
    ];
    for (what, request, status) in cases {
        let a = raw(s.server.addr(), &request).await;
        assert_documented(what, &a, &[status]);
        assert_alive(&s, what).await;
    }
    // Pipelined behind a good request: the good one is answered, then the bad one, in order.
    let mut both = b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n".to_vec();
    both.extend_from_slice(b"GET /\x01 HTTP/1.1\r\nhost: x\r\n\r\n");
    let mut stream = TcpStream::connect(s.server.addr()).await.unwrap();
    stream.write_all(&both).await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut got))
        .await
        .expect("answered and closed")
        .unwrap();
    let got = String::from_utf8_lossy(&got);
    let (first, second) = got.split_once("\r\n\r\nok").expect("the good one first");
    assert!(first.starts_with("HTTP/1.1 200"), "{got}");
    let second = Raw {
        status: second.split(' ').nth(1).unwrap().parse().unwrap(),
        body: second.split_once("\r\n\r\n").unwrap().1.to_owned(),
    };
    assert_documented("pipelined after a good request", &second, &[400]);
}

#[tokio::test]
async fn odd_json_bodies_are_400_or_413() {
    let s = scene().await;
    let room = &s.room;
    let target = format!("/v1/rooms/{room}/messages/t1");
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_object = format!(
        "{{\"parts\":{}1{}}}",
        "{\"a\":".repeat(5_000),
        "}".repeat(5_000)
    );
    let cases: Vec<(&str, Vec<u8>, &[u16])> = vec![
        ("deeply nested arrays", deep.into_bytes(), &[400, 413]),
        (
            "deeply nested objects",
            deep_object.into_bytes(),
            &[400, 413],
        ),
        (
            "invalid UTF-8",
            b"{\"parts\":[{\"type\":\"text/plain\",\"content\":\"\xff\xfe\"}]}".to_vec(),
            &[400],
        ),
        (
            "a lone surrogate",
            br#"{"parts":[{"type":"text/plain","content":"\ud800"}]}"#.to_vec(),
            &[400],
        ),
        (
            "a number for the parts",
            br#"{"parts":1e999}"#.to_vec(),
            &[400],
        ),
        ("null parts", br#"{"parts":null}"#.to_vec(), &[400]),
        ("no parts", br#"{"parts":[]}"#.to_vec(), &[400]),
        (
            "33 parts",
            json!({"parts": vec![json!({"type":"text/plain","content":"x"}); 33]})
                .to_string()
                .into_bytes(),
            &[400, 413],
        ),
        (
            "a text part without content",
            br#"{"parts":[{"type":"text/plain"}]}"#.to_vec(),
            &[400],
        ),
        (
            "an empty part type",
            br#"{"parts":[{"type":""}]}"#.to_vec(),
            &[400],
        ),
        (
            "a 20 KiB text part",
            json!({"parts":[{"type":"text/plain","content":"x".repeat(20_000)}]})
                .to_string()
                .into_bytes(),
            &[413],
        ),
        (
            "trailing garbage",
            br#"{"parts":[{"type":"text/plain","content":"x"}]} trailing"#.to_vec(),
            &[400],
        ),
        (
            "a BOM",
            b"\xef\xbb\xbf{\"parts\":[{\"type\":\"text/plain\",\"content\":\"x\"}]}".to_vec(),
            &[400],
        ),
    ];
    for (what, body, allowed) in cases {
        let a = raw(
            s.server.addr(),
            &request("PUT", &target, Some(&s.alice), Some(&body)),
        )
        .await;
        assert_documented(what, &a, allowed);
    }
    // A body that announces 10 GB: refused at once, not read.
    let mut r = format!("PUT {target} HTTP/1.1\r\nhost: x\r\nconnection: close\r\nauthorization: Bearer {}\r\ncontent-length: 10000000000\r\n\r\n{{", s.alice).into_bytes();
    r.extend_from_slice(b"\"parts\":");
    assert_documented(
        "a 10 GB content-length",
        &raw(s.server.addr(), &r).await,
        &[413],
    );
    // Nothing was stored by any of it.
    let h = Harness::new(s.server.url());
    assert!(h.full_history(&s.alice, room).await.unwrap().is_empty());
    assert_alive(&s, "odd bodies").await;
}

fn b64(bytes: &[u8]) -> String {
    // base64url without padding, by hand (the harness needs no crypto crate for forging).
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn forged_tokens_are_401_on_every_route() {
    let s = scene().await;
    let room = &s.room;
    let real = &s.alice;
    let (h, _p, sig) = {
        let mut it = real.split('.');
        (
            it.next().unwrap().to_owned(),
            it.next().unwrap().to_owned(),
            it.next().unwrap().to_owned(),
        )
    };
    let claims = |sub: &str, exp: u64| b64(json!({"sub": sub, "exp": exp}).to_string().as_bytes());
    let forged = [
        // alg none, no signature.
        format!(
            "{}.{}.",
            b64(br#"{"alg":"none","typ":"JWT"}"#),
            claims("alice", now() + 3600)
        ),
        // Another algorithm announced, the real signature reused.
        format!(
            "{}.{}.{sig}",
            b64(br#"{"alg":"HS512","typ":"JWT"}"#),
            claims("alice", now() + 3600)
        ),
        // The real header and signature over other claims (a different user).
        format!("{h}.{}.{sig}", claims("mallory", now() + 3600)),
        // Expired long ago, with a signature that cannot match anyway.
        format!("{h}.{}.{sig}", claims("alice", 1)),
        // Not a JWT.
        "x".repeat(5_000),
        format!("{h}.{}", claims("alice", now() + 3600)),
        "..".to_owned(),
        format!("{real}x"),
        format!("{real}.extra"),
    ];
    let routes = [
        ("GET", "/v1/rooms".to_owned()),
        ("POST", "/v1/rooms".to_owned()),
        ("POST", "/v1/rooms/direct".to_owned()),
        ("GET", format!("/v1/rooms/{room}")),
        ("GET", format!("/v1/rooms/{room}/messages")),
        ("PUT", format!("/v1/rooms/{room}/messages/t1")),
        ("GET", "/v1/sync".to_owned()),
        ("GET", "/v1/users/alice".to_owned()),
        ("PUT", "/v1/users/alice".to_owned()),
        ("GET", format!("/messages?room_id={room}")),
    ];
    for token in &forged {
        for (method, target) in &routes {
            let body = match *method {
                "GET" => None,
                _ => Some(br#"{"parts":[{"type":"text/plain","content":"x"}],"member_ids":[],"user_id":"bob","name":"n"}"#.as_slice()),
            };
            let a = raw(s.server.addr(), &request(method, target, Some(token), body)).await;
            assert_documented(
                &format!("{method} {target} with {}", &token[..token.len().min(40)]),
                &a,
                &[401],
            );
        }
    }
    // Header tricks: another scheme, no space, two tokens, a huge header.
    for header in [
        format!("Basic {real}"),
        format!("Bearer{real}"),
        format!("Bearer {real} {real}"),
        format!("Bearer {}", "a".repeat(60_000)),
    ] {
        let r = format!("GET /v1/rooms HTTP/1.1\r\nhost: x\r\nconnection: close\r\nauthorization: {header}\r\n\r\n");
        let a = raw(s.server.addr(), r.as_bytes()).await;
        assert!(
            a.status == 401 || a.status == 431 || a.status == 400,
            "{}: {}",
            &header[..20],
            a.status
        );
        assert_ne!(a.status, 500);
    }
    let h = Harness::new(s.server.url());
    assert!(
        h.full_history(real, room).await.unwrap().is_empty(),
        "no forged write got through"
    );
    assert_alive(&s, "forged tokens").await;
}

#[tokio::test]
async fn rooms_are_private_on_every_route() {
    let s = scene().await;
    let h = Harness::new(s.server.url());
    let room = &s.room;
    // A message in alice and bob's room.
    let sent = raw(
        s.server.addr(),
        &request(
            "PUT",
            &format!("/v1/rooms/{room}/messages/t1"),
            Some(&s.alice),
            Some(br#"{"parts":[{"type":"text/plain","content":"secret"}]}"#),
        ),
    )
    .await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    let eve = h.token("eve").await.unwrap();
    for (method, target, body) in [
        ("GET", format!("/v1/rooms/{room}"), None),
        ("GET", format!("/v1/rooms/{room}/messages"), None),
        (
            "GET",
            format!("/v1/rooms/{room}/messages?direction=newer"),
            None,
        ),
        (
            "PUT",
            format!("/v1/rooms/{room}/messages/e1"),
            Some(br#"{"parts":[{"type":"text/plain","content":"hi"}]}"#.as_slice()),
        ),
        (
            "PUT",
            format!("/v1/rooms/{room}/messages/t1"),
            Some(br#"{"parts":[{"type":"text/plain","content":"hi"}]}"#.as_slice()),
        ),
        ("GET", format!("/messages?room_id={room}"), None),
    ] {
        let a = raw(s.server.addr(), &request(method, &target, Some(&eve), body)).await;
        assert_documented(&format!("eve {method} {target}"), &a, &[403]);
        assert!(!a.body.contains("secret"), "{target} leaked: {}", a.body);
    }
    // Sync and the room list show eve nothing of it, initial or incremental.
    for target in ["/v1/sync", "/v1/rooms"] {
        let a = raw(s.server.addr(), &request("GET", target, Some(&eve), None)).await;
        assert_eq!(a.status, 200);
        assert!(
            !a.body.contains(room.as_str()) && !a.body.contains("secret"),
            "{target}: {}",
            a.body
        );
    }
    // Eve's txn id "t1" is hers: reusing alice's id neither reads nor overwrites alice's message.
    let history = h.full_history(&s.alice, room).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].text(), Some("secret"));
}

#[tokio::test]
async fn the_dev_token_route_is_off_in_secret_mode_and_secrets_stay_out_of_answers() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::for_tests(dir.path().join("s.db"));
    config.auth = AuthMode::Secret;
    config.token_secret = Some("s3cr3t-value-that-must-not-leak".into());
    let server = chatsync_server::start(config).await.unwrap();
    for (method, target, body) in [
        (
            "POST",
            "/v1/token",
            Some(br#"{"user_id":"alice"}"#.as_slice()),
        ),
        (
            "POST",
            "/v1/token/",
            Some(br#"{"user_id":"alice"}"#.as_slice()),
        ),
        (
            "POST",
            "/v1/token?dev=1",
            Some(br#"{"user_id":"alice"}"#.as_slice()),
        ),
        ("GET", "/v1/openapi.json", None),
        ("GET", "/health", None),
    ] {
        let a = raw(server.addr(), &request(method, target, None, body)).await;
        assert!(!a.body.contains("s3cr3t"), "{target} leaked the secret");
        if method == "POST" {
            assert_documented(target, &a, &[404]);
            assert!(!a.body.contains("access_token"), "{target}: {}", a.body);
        }
    }
    server.shutdown().await;
}
