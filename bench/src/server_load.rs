//! `chatsync-bench server`: the reference server's throughput and wake-up latency (issue 15),
//! measured against real `chatsync-server` binaries in child processes on loopback, so two builds
//! (this one and the one before) are measured in the same run on the same machine.
//!
//! ```text
//! chatsync-bench server --server-bin PATH [--baseline-bin PATH] [--postgres URL]
//!                       [--duration SECS] [--quick] [--only sends|wake|live|offered]
//!                       [--senders N,N,...] [--offered N,N,...]
//! ```
//! With `--postgres URL` (a database the bench may create schemas in), two more contenders (four
//! with a baseline, which then runs on PostgreSQL too): the
//! server under test on PostgreSQL with one instance, and with three instances on one database
//! (a fresh schema each), the load spread over them: sender `i` and poll `i` on instance
//! `i mod 3`, every wake-up send on instance 0, so two thirds of the woken polls are woken across
//! instances (their p99 is reported apart).
//! 1. **sends/s at saturation**: N senders (1, 8, 32, 128), each a kept-alive connection sending
//!    its next message as soon as the last one is answered, for `--duration` seconds after a
//!    second of warm-up; sends/s and latency p50/p99. The server under test with group commit,
//!    the same build with `--group-commit false`, and the baseline build.
//! 2. **wake latency**: 5,000 `/v1/sync` long-polls parked (50 users, 100 each, one room; the
//!    server's debug log says when each is parked), then one send: from the start of the send to
//!    each poll's complete answer, p50/p99/max, five rounds. Connections stay open until every
//!    answer is in (a device polls again on the same connection).
//! 3. **sends/s with 1,000 live pollers**: 1,000 long-polls in the room (100 users) that follow
//!    `next_batch` as soon as each answer arrives, while 32 senders send for `--duration`.
//! 4. **an offered load**: sends arriving at a steady rate (1,000 to 4,000 a second) from 128
//!    users, each on its own connection, whatever the answers (open loop, as a deployment's users
//!    send): sends answered per second and latency p50/p99/max counted from when each send was
//!    due, so a deployment that falls behind shows it. With few closed-loop senders, scenario 1
//!    measures latency more than capacity (a commit carries at most the sends waiting on its
//!    instance); here the arrivals decide, as in production.
//!
//! The load generator is a minimal HTTP/1.1 client on tokio (a request, then the head and a
//! `content-length` body), so it costs the 2 CPUs little next to the server. Each scenario starts
//! a fresh server on a fresh database. Any non-2xx answer or error panics (exit non-zero).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// The knobs of one run.
struct Plan {
    duration: Duration,
    senders: Vec<usize>,
    parked: usize,
    parked_users: usize,
    wake_rounds: usize,
    pollers: usize,
    poller_users: usize,
    live_senders: usize,
    /// Offered loads, sends per second.
    offered: Vec<u32>,
    offered_users: usize,
}

impl Plan {
    fn full(duration: Duration) -> Plan {
        Plan {
            duration,
            senders: vec![1, 8, 32, 128],
            parked: 5_000,
            parked_users: 50,
            wake_rounds: 5,
            pollers: 1_000,
            poller_users: 100,
            live_senders: 32,
            offered: vec![1_000, 2_000, 3_000, 4_000],
            offered_users: 128,
        }
    }

    fn quick() -> Plan {
        Plan {
            duration: Duration::from_millis(500),
            senders: vec![1, 8],
            parked: 200,
            parked_users: 10,
            wake_rounds: 1,
            pollers: 50,
            poller_users: 10,
            live_senders: 4,
            offered: vec![200],
            offered_users: 8,
        }
    }
}

const WARM_UP: Duration = Duration::from_secs(1);

/// The servers' log filter: warnings, and the line that says where it listens; no line per
/// request (at 10,000 requests a second that line alone costs a core's worth of formatting).
const QUIET_LOG: &str = "warn,chatsync_server=info,chatsync_server::app=warn";

/// Entry point of `chatsync-bench server`.
pub fn run(args: &[String]) {
    let mut server_bin: Option<PathBuf> = None;
    let mut baseline_bin: Option<PathBuf> = None;
    let mut duration = Duration::from_secs(5);
    let mut quick = false;
    let mut only: Option<String> = None;
    let mut postgres: Option<String> = None;
    let mut senders: Option<Vec<usize>> = None;
    let mut rates: Option<Vec<u32>> = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--server-bin" => server_bin = Some(it.next().expect("--server-bin PATH").into()),
            "--baseline-bin" => baseline_bin = Some(it.next().expect("--baseline-bin PATH").into()),
            "--duration" => {
                duration = Duration::from_secs_f64(
                    it.next()
                        .and_then(|s| s.parse().ok())
                        .expect("--duration SECS"),
                )
            }
            "--quick" => quick = true,
            "--postgres" => postgres = Some(it.next().expect("--postgres URL").clone()),
            "--only" => only = Some(it.next().expect("--only sends|wake|live|offered").clone()),
            "--senders" => senders = Some(numbers(it.next(), "--senders N,N,...")),
            "--offered" => rates = Some(numbers(it.next(), "--offered N,N,...")),
            other => {
                eprintln!("unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    let Some(server_bin) = server_bin else {
        eprintln!("usage: chatsync-bench server --server-bin PATH [--baseline-bin PATH] [--duration SECS] [--quick]");
        std::process::exit(2);
    };
    let mut plan = if quick {
        Plan::quick()
    } else {
        Plan::full(duration)
    };
    if let Some(senders) = senders {
        plan.senders = senders;
    }
    if let Some(rates) = rates {
        plan.offered = rates;
    }
    let fds = raise_fd_limit();
    println!(
        "chatsync-bench server: {} CPUs, open-file limit {fds}, {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        crate::load_average()
    );
    println!("  under test: {}", server_bin.display());
    if let Some(b) = &baseline_bin {
        println!("  baseline:   {}", b.display());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // (label, binary, extra flags, PostgreSQL instances: 0 for SQLite)
    let mut contenders: Vec<(&str, &Path, Vec<&str>, usize)> = Vec::new();
    if let Some(b) = &baseline_bin {
        contenders.push(("baseline", b, vec![], 0));
    }
    contenders.push((
        "group commit off",
        &server_bin,
        vec!["--group-commit", "false"],
        0,
    ));
    contenders.push(("group commit on", &server_bin, vec![], 0));
    if postgres.is_some() {
        contenders.push(("PostgreSQL x1", &server_bin, vec![], 1));
        contenders.push(("PostgreSQL x3", &server_bin, vec![], 3));
        if let Some(b) = &baseline_bin {
            contenders.push(("baseline PG x1", b, vec![], 1));
            contenders.push(("baseline PG x3", b, vec![], 3));
        }
    }
    let start = |bin: &Path, flags: &[&str], log: &str, instances: usize| match instances {
        0 => Server::start(bin, flags, log),
        n => Server::start_postgres(bin, flags, log, postgres.as_deref().expect("--postgres"), n),
    };

    let wanted = |name: &str| !matches!(only.as_deref(), Some(o) if o != name);
    if wanted("sends") {
        println!(
            "\n1. sends/s at saturation ({:.0} s each after {:.0} s of warm-up; latency p50 / p99)",
            plan.duration.as_secs_f64(),
            WARM_UP.as_secs_f64()
        );
        for &senders in &plan.senders {
            for (label, bin, flags, instances) in &contenders {
                let server = start(bin, flags, QUIET_LOG, *instances);
                let r = runtime.block_on(sends(&server, senders, plan.duration));
                println!(
                    "  {senders:>3} senders  {label:<17} {:>8.0} sends/s   {:>7.2} / {:>7.2} ms   server CPU {:>4.0} us/send",
                    r.per_second, r.p50_ms, r.p99_ms, r.server_cpu_us
                );
                drop(server);
            }
        }
    }

    if wanted("wake") {
        println!(
        "\n2. wake latency: {} parked long-polls ({} users, one room), one send; from the send to each answer",
        plan.parked, plan.parked_users
    );
        for (label, bin, flags, instances) in
            contenders.iter().filter(|c| c.0 != "group commit off")
        {
            let server = start(
                bin,
                flags,
                &format!("{QUIET_LOG},chatsync_server::routes::sync=debug"),
                *instances,
            );
            let rounds = runtime.block_on(wake(
                &server,
                plan.parked,
                plan.parked_users,
                plan.wake_rounds,
            ));
            for (i, r) in rounds.iter().enumerate() {
                let across = if *instances > 1 {
                    format!("; across instances p99 {:.1} ms", r.cross_p99_ms)
                } else {
                    String::new()
                };
                println!(
                "  {label:<17} round {}: p50 {:>7.1} ms  p99 {:>7.1} ms  max {:>7.1} ms  ({} answered; the send itself {:.1} ms; server CPU {:.0} ms{across})",
                i + 1,
                r.p50_ms,
                r.p99_ms,
                r.max_ms,
                r.answered,
                r.send_ms,
                r.server_cpu.as_secs_f64() * 1000.0
            );
            }
            drop(server);
        }
    }

    if wanted("live") {
        println!(
            "\n3. sends/s with {} live pollers ({} users) in the room, {} senders, {:.0} s",
            plan.pollers,
            plan.poller_users,
            plan.live_senders,
            plan.duration.as_secs_f64()
        );
        for (label, bin, flags, instances) in &contenders {
            let server = start(bin, flags, QUIET_LOG, *instances);
            let r = runtime.block_on(live(
                &server,
                plan.pollers,
                plan.poller_users,
                plan.live_senders,
                plan.duration,
            ));
            let cpu = r.server_cpu;
            println!(
            "  {label:<17} {:>8.0} sends/s   p50 {:>7.2} / p99 {:>7.2} ms;  {:>8.0} poll answers/s; server CPU {:.0}% of one core",
            r.sends.per_second,
            r.sends.p50_ms,
            r.sends.p99_ms,
            r.poll_answers_per_second,
            100.0 * cpu.as_secs_f64() / (plan.duration + WARM_UP).as_secs_f64()
        );
            drop(server);
        }
    }
    if wanted("offered") {
        println!(
            "\n4. an offered load: sends at a steady rate from {} users, open loop, {:.0} s; latency from when each was due",
            plan.offered_users,
            plan.duration.as_secs_f64()
        );
        for &rate in &plan.offered {
            for (label, bin, flags, instances) in
                contenders.iter().filter(|c| c.0 != "group commit off")
            {
                let server = start(bin, flags, QUIET_LOG, *instances);
                let r = runtime.block_on(offered(&server, rate, plan.offered_users, plan.duration));
                println!(
                    "  {rate:>5}/s offered  {label:<17} {:>8.0} answered/s   p50 {:>7.2} / p99 {:>7.2} / max {:>7.2} ms   server CPU {:>4.0} us/send",
                    r.per_second, r.p50_ms, r.p99_ms, r.max_ms, r.server_cpu_us
                );
                drop(server);
            }
        }
    }
    println!("\n{}", crate::load_average());
}

/// A deployment on a fresh database: one server process on SQLite, or one or more on a fresh
/// schema of a PostgreSQL database.
struct Server {
    procs: Vec<Proc>,
    /// The PostgreSQL database and schema, dropped with the deployment.
    schema: Option<(String, String)>,
    /// SQLite's directory.
    _dir: Option<tempfile::TempDir>,
}

/// A server child process.
struct Proc {
    child: Child,
    addr: SocketAddr,
    /// "long-poll parked" lines seen in its log (with the sync route's debug log on).
    parked: Arc<AtomicUsize>,
}

impl Server {
    fn start(bin: &Path, flags: &[&str], log: &str) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("bench.db");
        let proc = Proc::start(bin, &db.display().to_string(), flags, log);
        Server {
            procs: vec![proc],
            schema: None,
            _dir: Some(dir),
        }
    }

    /// `instances` processes on a new schema of the database at `url`.
    fn start_postgres(
        bin: &Path,
        flags: &[&str],
        log: &str,
        url: &str,
        instances: usize,
    ) -> Server {
        let schema = format!("bench_{}", std::process::id()) + &format!("_{}", fastrand::u64(..));
        let mut client = postgres::Client::connect(url, postgres::NoTls).expect("PostgreSQL");
        client
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .expect("create the schema");
        let sep = if url.contains('?') { '&' } else { '?' };
        let db = format!("{url}{sep}options=-c%20search_path%3D{schema}");
        let procs = (0..instances)
            .map(|_| Proc::start(bin, &db, flags, log))
            .collect();
        Server {
            procs,
            schema: Some((url.to_owned(), schema)),
            _dir: None,
        }
    }

    /// The instance the `i`-th connection of a kind goes to.
    fn addr(&self, i: usize) -> SocketAddr {
        self.procs[i % self.procs.len()].addr
    }

    /// Every instance's address, in order.
    fn addrs(&self) -> Vec<SocketAddr> {
        self.procs.iter().map(|p| p.addr).collect()
    }

    /// Long-polls parked so far, over all instances.
    fn parked(&self) -> usize {
        self.procs
            .iter()
            .map(|p| p.parked.load(Ordering::Relaxed))
            .sum()
    }

    /// CPU time (user + system) the server processes used so far (not the database's).
    fn cpu(&self) -> Duration {
        self.procs.iter().map(|p| cpu_time(p.child.id())).sum()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        for p in &mut self.procs {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
        if let Some((url, schema)) = self.schema.take() {
            if let Ok(mut client) = postgres::Client::connect(&url, postgres::NoTls) {
                let _ = client.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"));
            }
        }
    }
}

impl Proc {
    fn start(bin: &Path, db: &str, flags: &[&str], log: &str) -> Proc {
        use std::io::BufRead;
        let mut child = Command::new(bin)
            .args(["--addr", "127.0.0.1:0", "--db", db])
            .args(flags)
            .env("RUST_LOG", log)
            .env("NO_COLOR", "1")
            .env_remove("CHATSYNC_AUTH")
            .env_remove("CHATSYNC_TOKEN_SECRET")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the server");
        let stderr = child.stderr.take().expect("piped");
        let parked = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = std::sync::mpsc::channel();
        let counter = parked.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if line.contains("long-poll parked") {
                    counter.fetch_add(1, Ordering::Relaxed);
                } else if let Some(addr) = line
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("addr="))
                {
                    let _ = tx.send(addr.to_owned());
                } else if (line.contains("WARN") || line.contains("ERROR"))
                    && !line.contains("dev auth")
                {
                    eprintln!("[server] {line}");
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the server says where it listens")
            .parse()
            .expect("an address");
        Proc {
            child,
            addr,
            parked,
        }
    }
}

/// CPU time (user + system) of a process so far, from /proc.
fn cpu_time(pid: u32) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // SAFETY: sysconf reads a constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis((ticks(11) + ticks(12)) * 1000 / hz)
}

/// One kept-alive HTTP/1.1 connection.
struct Conn {
    read: BufReader<OwnedReadHalf>,
    write: OwnedWriteHalf,
    line: String,
}

impl Conn {
    async fn open(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        Conn {
            read: BufReader::new(read),
            write,
            line: String::new(),
        }
    }

    async fn send(&mut self, request: &[u8]) {
        self.write.write_all(request).await.expect("write");
    }

    /// Reads one answer: (status, body).
    async fn answer(&mut self) -> (u16, Vec<u8>) {
        self.line.clear();
        self.read
            .read_line(&mut self.line)
            .await
            .expect("status line");
        let status: u16 = self
            .line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not HTTP: {:?}", self.line));
        let mut length = 0usize;
        loop {
            self.line.clear();
            self.read.read_line(&mut self.line).await.expect("header");
            let line = self.line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().expect("content-length");
                }
            }
        }
        let mut body = vec![0u8; length];
        self.read.read_exact(&mut body).await.expect("body");
        (status, body)
    }

    async fn call(&mut self, request: &[u8]) -> Vec<u8> {
        self.send(request).await;
        let (status, body) = self.answer().await;
        assert!(
            (200..300).contains(&status),
            "{status}: {}",
            String::from_utf8_lossy(&body)
        );
        body
    }
}

fn get(target: &str, token: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nhost: b\r\nauthorization: Bearer {token}\r\n\r\n")
        .into_bytes()
}

fn with_body(method: &str, target: &str, token: Option<&str>, body: &str) -> Vec<u8> {
    let auth = token.map_or(String::new(), |t| format!("authorization: Bearer {t}\r\n"));
    format!(
        "{method} {target} HTTP/1.1\r\nhost: b\r\n{auth}content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The string value of `"key":"..."` in a JSON body (the bench's own answers only).
fn json_str(body: &[u8], key: &str) -> String {
    let text = std::str::from_utf8(body).expect("utf-8");
    let needle = format!("\"{key}\":\"");
    let start = text
        .find(&needle)
        .unwrap_or_else(|| panic!("{key} in {text}"))
        + needle.len();
    let end = start + text[start..].find('"').expect("closing quote");
    text[start..end].to_owned()
}

/// Tokens for `users` and a room with all of them; (tokens, room id).
async fn scene(addr: SocketAddr, users: &[String]) -> (Vec<String>, String) {
    let mut conn = Conn::open(addr).await;
    let mut tokens = Vec::with_capacity(users.len());
    for user in users {
        let body = conn
            .call(&with_body(
                "POST",
                "/v1/token",
                None,
                &format!("{{\"user_id\":\"{user}\"}}"),
            ))
            .await;
        tokens.push(json_str(&body, "access_token"));
    }
    let members: Vec<String> = users.iter().map(|u| format!("\"{u}\"")).collect();
    let body = conn
        .call(&with_body(
            "POST",
            "/v1/rooms",
            Some(&tokens[0]),
            &format!(
                "{{\"name\":\"bench\",\"member_ids\":[{}]}}",
                members.join(",")
            ),
        ))
        .await;
    (tokens, json_str(&body, "id"))
}

const MESSAGE: &str =
    r#"{"parts":[{"type":"text/plain","content":"a benchmark message with a little text in it"}]}"#;

/// Throughput and latency of closed-loop senders.
struct SendStats {
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Server CPU per send, in microseconds (warm-up included).
    server_cpu_us: f64,
    /// Every send answered, warm-up included.
    sent: usize,
}

/// `senders` closed-loop senders for `WARM_UP + duration`; counts the answers inside the window.
async fn sends(server: &Server, senders: usize, duration: Duration) -> SendStats {
    let users: Vec<String> = (0..senders).map(|i| format!("sender{i}")).collect();
    let (tokens, room) = scene(server.addr(0), &users).await;
    let cpu = server.cpu();
    let mut stats = send_for(
        &server.addrs(),
        &tokens,
        &room,
        duration,
        &Arc::new(AtomicBool::new(false)),
    )
    .await;
    stats.server_cpu_us = (server.cpu() - cpu).as_secs_f64() * 1e6 / stats.sent.max(1) as f64;
    stats
}

async fn send_for(
    addrs: &[SocketAddr],
    tokens: &[String],
    room: &str,
    duration: Duration,
    stop_early: &Arc<AtomicBool>,
) -> SendStats {
    let start = Instant::now();
    let (from, until) = (start + WARM_UP, start + WARM_UP + duration);
    let sent = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        let (token, room, stop, sent) = (
            token.clone(),
            room.to_owned(),
            stop_early.clone(),
            sent.clone(),
        );
        let addr = addrs[i % addrs.len()];
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(addr).await;
            let mut latencies = Vec::new();
            let mut n = 0u64;
            while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                let request = with_body(
                    "PUT",
                    &format!("/v1/rooms/{room}/messages/s{i}-{n}"),
                    Some(&token),
                    MESSAGE,
                );
                n += 1;
                let asked = Instant::now();
                conn.call(&request).await;
                sent.fetch_add(1, Ordering::Relaxed);
                let done = Instant::now();
                if done >= from && done < until {
                    latencies.push((done - asked).as_micros() as u32);
                }
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("sender"));
    }
    all.sort_unstable();
    SendStats {
        per_second: all.len() as f64 / duration.as_secs_f64(),
        p50_ms: percentile(&all, 0.50) / 1000.0,
        p99_ms: percentile(&all, 0.99) / 1000.0,
        server_cpu_us: f64::NAN,
        sent: sent.load(Ordering::Relaxed),
    }
}

/// A flag's comma-separated numbers (`8,32`); a missing or bad list panics with `usage`.
fn numbers<T: std::str::FromStr>(list: Option<&String>, usage: &str) -> Vec<T> {
    list.expect(usage)
        .split(',')
        .map(|n| n.parse().unwrap_or_else(|_| panic!("{usage}")))
        .collect()
}

/// An offered load's figures.
struct Offered {
    /// Sends answered inside the window, per second.
    per_second: f64,
    /// From when each send of the window was due to its answer.
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    /// Server CPU per send, in microseconds (warm-up included).
    server_cpu_us: f64,
}

/// `rate` sends a second from `users` users for `WARM_UP + duration`, open loop: user `i` sends
/// its `k`-th message when `(i + k * users) / rate` seconds have passed, or as soon as its
/// connection's previous send is answered if that is later (and the wait counts in its latency).
async fn offered(server: &Server, rate: u32, users: usize, duration: Duration) -> Offered {
    let names: Vec<String> = (0..users).map(|i| format!("sender{i}")).collect();
    let (tokens, room) = scene(server.addr(0), &names).await;
    let addrs = server.addrs();
    let cpu = server.cpu();
    let start = Instant::now() + Duration::from_millis(100);
    let (from, until) = (start + WARM_UP, start + WARM_UP + duration);
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
    let mut tasks = Vec::new();
    for (i, token) in tokens.into_iter().enumerate() {
        let (room, addr) = (room.clone(), addrs[i % addrs.len()]);
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(addr).await;
            let (mut latencies, mut answered, mut sent) = (Vec::new(), 0usize, 0usize);
            for k in 0u32.. {
                let due = start + interval * (i as u32 + k * users as u32);
                if due >= until {
                    break;
                }
                tokio::time::sleep_until(due.into()).await;
                let request = with_body(
                    "PUT",
                    &format!("/v1/rooms/{room}/messages/o{i}-{k}"),
                    Some(&token),
                    MESSAGE,
                );
                conn.call(&request).await;
                sent += 1;
                let done = Instant::now();
                if due >= from {
                    latencies.push((done - due).as_micros() as u32);
                }
                if done >= from && done < until {
                    answered += 1;
                }
            }
            (latencies, answered, sent)
        }));
    }
    let (mut all, mut answered, mut sent) = (Vec::new(), 0, 0);
    for t in tasks {
        let (latencies, a, s) = t.await.expect("sender");
        all.extend(latencies);
        answered += a;
        sent += s;
    }
    all.sort_unstable();
    Offered {
        per_second: answered as f64 / duration.as_secs_f64(),
        p50_ms: percentile(&all, 0.50) / 1000.0,
        p99_ms: percentile(&all, 0.99) / 1000.0,
        max_ms: all.last().map_or(f64::NAN, |&us| f64::from(us) / 1000.0),
        server_cpu_us: (server.cpu() - cpu).as_secs_f64() * 1e6 / sent.max(1) as f64,
    }
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    f64::from(sorted[i])
}

/// One wake round's figures.
struct Wake {
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    answered: usize,
    /// CPU the server used from the send to the last answer.
    server_cpu: Duration,
    /// How long the send itself took to be answered (its commit included).
    send_ms: f64,
    /// p99 of the polls parked on another instance than the send's (NaN with one instance).
    cross_p99_ms: f64,
}

/// Parks `polls` long-polls, sends one message, times every answer; `rounds` times.
async fn wake(server: &Server, polls: usize, users: usize, rounds: usize) -> Vec<Wake> {
    let addr = server.addr(0);
    let names: Vec<String> = (0..users).map(|i| format!("parker{i}")).collect();
    let (tokens, room) = scene(addr, &names).await;
    let mut out = Vec::new();
    for round in 0..rounds {
        let mut conn = Conn::open(addr).await;
        let mut since = Vec::new();
        for token in &tokens {
            since.push(json_str(
                &conn.call(&get("/v1/sync?limit=1", token)).await,
                "next_batch",
            ));
        }
        let parked_before = server.parked();
        let mut waiting = Vec::with_capacity(polls);
        for i in 0..polls {
            let mut poll = Conn::open(server.addr(i)).await;
            let across = server.addr(i) != addr;
            poll.send(&get(
                &format!("/v1/sync?since={}&timeout_ms=30000", since[i % users]),
                &tokens[i % users],
            ))
            .await;
            waiting.push(tokio::spawn(async move {
                let (status, body) = poll.answer().await;
                let at = Instant::now();
                assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
                // Kept open until every answer is in, as a device that polls again would keep
                // it: closing it here would put 5,000 teardowns inside the measured window.
                (at, body, poll, across)
            }));
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while server.parked() < parked_before + polls {
            assert!(Instant::now() < deadline, "not all parked");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let text = format!("wake {round}");
        let cpu_before = server.cpu();
        let start = Instant::now();
        conn.call(&with_body(
            "PUT",
            &format!("/v1/rooms/{room}/messages/wake-{round}"),
            Some(&tokens[0]),
            &format!(r#"{{"parts":[{{"type":"text/plain","content":"{text}"}}]}}"#),
        ))
        .await;
        // The send's own answer: its commit (an fsync) is part of every poll's wait.
        let send_ms = start.elapsed().as_secs_f64() * 1000.0;
        let mut latencies = Vec::with_capacity(polls);
        let mut across_latencies = Vec::new();
        let mut open = Vec::with_capacity(polls);
        for w in waiting {
            let (at, body, poll, across) = w.await.expect("poll");
            if across {
                across_latencies.push((at - start).as_micros() as u32);
            }
            open.push(poll);
            assert!(
                String::from_utf8_lossy(&body).contains(&text),
                "answered with the message"
            );
            latencies.push((at - start).as_micros() as u32);
        }
        let server_cpu = server.cpu() - cpu_before;
        drop(open);
        latencies.sort_unstable();
        across_latencies.sort_unstable();
        out.push(Wake {
            cross_p99_ms: percentile(&across_latencies, 0.99) / 1000.0,
            p50_ms: percentile(&latencies, 0.50) / 1000.0,
            p99_ms: percentile(&latencies, 0.99) / 1000.0,
            max_ms: f64::from(*latencies.last().unwrap_or(&0)) / 1000.0,
            answered: latencies.len(),
            server_cpu,
            send_ms,
        });
    }
    out
}

/// Figures of the live-poller run.
struct Live {
    sends: SendStats,
    poll_answers_per_second: f64,
    /// CPU the server used while the senders sent (warm-up included).
    server_cpu: Duration,
}

async fn live(
    server: &Server,
    pollers: usize,
    poller_users: usize,
    senders: usize,
    duration: Duration,
) -> Live {
    let names: Vec<String> = (0..poller_users)
        .map(|i| format!("poller{i}"))
        .chain((0..senders).map(|i| format!("sender{i}")))
        .collect();
    let addr = server.addr(0);
    let (tokens, room) = scene(addr, &names).await;
    let (poll_tokens, send_tokens) = tokens.split_at(poller_users);
    let stop = Arc::new(AtomicBool::new(false));
    let answers = Arc::new(AtomicUsize::new(0));
    let mut conn = Conn::open(addr).await;
    let mut since = Vec::new();
    for token in poll_tokens {
        since.push(json_str(
            &conn.call(&get("/v1/sync?limit=1", token)).await,
            "next_batch",
        ));
    }
    let mut tasks = Vec::new();
    for i in 0..pollers {
        let (token, mut since) = (
            poll_tokens[i % poller_users].clone(),
            since[i % poller_users].clone(),
        );
        let (stop, answers) = (stop.clone(), answers.clone());
        let addr = server.addr(i);
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(addr).await;
            while !stop.load(Ordering::Relaxed) {
                let body = conn
                    .call(&get(
                        &format!("/v1/sync?since={since}&timeout_ms=30000"),
                        &token,
                    ))
                    .await;
                since = json_str(&body, "next_batch");
                answers.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let measured_from = Instant::now() + WARM_UP;
    let answers_before = Arc::new(AtomicUsize::new(0));
    let (a, b) = (answers.clone(), answers_before.clone());
    let snapshot = tokio::spawn(async move {
        tokio::time::sleep_until(measured_from.into()).await;
        b.store(a.load(Ordering::Relaxed), Ordering::Relaxed);
    });
    let cpu_before = server.cpu();
    let sends = send_for(
        &server.addrs(),
        send_tokens,
        &room,
        duration,
        &Arc::new(AtomicBool::new(false)),
    )
    .await;
    let server_cpu = server.cpu() - cpu_before;
    let answered = answers.load(Ordering::Relaxed);
    snapshot.await.expect("snapshot");
    stop.store(true, Ordering::Relaxed);
    // The pollers are parked; the server is killed with them, their tasks are dropped.
    for t in tasks {
        t.abort();
    }
    Live {
        sends,
        poll_answers_per_second: (answered - answers_before.load(Ordering::Relaxed)) as f64
            / duration.as_secs_f64(),
        server_cpu,
    }
}

/// Raises this process's open-file limit to its hard limit (children inherit it); the new soft
/// limit.
#[allow(clippy::unnecessary_cast)] // rlim_t is not u64 everywhere
fn raise_fd_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit on a valid, owned struct.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        lim.rlim_cur = lim.rlim_max;
        let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur as u64
    }
}
