//! `chatsync-torture-client`: one short life of a device for the crash torture
//! (`chatsync-torture`), run as a child process so it can be SIGKILLed at any instruction,
//! opening included. Built on chatsync-core exactly as an app uses it.
//!
//! A life: open the store (or, in `--background` lives, run the one-shot
//! `background_sync_at` an OS background task runs), log in on first use, then a random run of
//! the app's operations: send, sync, read the outbox, retry, discard, read messages. Most
//! lives are killed part way; the rest end by themselves.
//!
//! It prints one line per step on stdout (Rust's stdout is line-buffered, so a killed child
//! never leaves half a line), which is how the torture knows what was promised:
//! - `opening` at start, `opened` once the store is open, `open-error KIND TEXT`;
//! - `sending ROOM TEXT` before `send_text`, `queued LOCAL_ID ROOM TEXT` once it returned:
//!   from then on the message must reach the server exactly once (or stay queued);
//! - `discarding LOCAL_ID` before `discard` (from then on the message may be gone),
//!   `discarded LOCAL_ID` after;
//! - `step NAME` before each other operation, `error OP KIND TEXT` for a failed one;
//! - `done` when the life ends by itself.

use std::path::PathBuf;
use std::time::Duration;

use chatsync_core::{ChatClient, ChatError, ClientConfig, MessageState, TokenSource};
use clap::Parser;

/// One life of a torture device.
#[derive(Debug, Parser)]
struct Args {
    /// Server (or proxy) base URL, loopback.
    #[arg(long)]
    server: String,
    /// The device store.
    #[arg(long)]
    data: PathBuf,
    /// The user.
    #[arg(long)]
    user: String,
    /// Room ids the user is a member of, comma-separated.
    #[arg(long, value_delimiter = ',')]
    rooms: Vec<String>,
    /// A room id the server does not know: sends there end `failed` (for retry and discard).
    #[arg(long)]
    bad_room: Option<String>,
    /// Seed of this life's choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Tag that makes texts unique across lives (the life's number).
    #[arg(long)]
    tag: String,
    /// Operations in this life (at most).
    #[arg(long, default_value_t = 12)]
    ops: u32,
    /// Run `background_sync_at` with this budget (ms) instead of opening the store as an app.
    #[arg(long)]
    background: Option<u64>,
}

fn kind(e: &ChatError) -> &'static str {
    match e {
        ChatError::Offline(_) => "offline",
        ChatError::Unavailable { .. } => "unavailable",
        ChatError::Unauthorized(_) => "unauthorized",
        ChatError::NotFound(_) => "not_found",
        ChatError::Rejected { .. } => "rejected",
        ChatError::Protocol(_) => "protocol",
        ChatError::Storage(_) => "storage",
        ChatError::InvalidInput(_) => "invalid_input",
        ChatError::Busy(_) => "busy",
        ChatError::ShutDown => "shut_down",
        ChatError::Internal(_) => "internal",
    }
}

fn one_line(e: &ChatError) -> String {
    e.to_string().replace('\n', " ")
}

fn main() {
    let args = Args::parse();
    println!("opening");
    let mut config = ClientConfig::new(
        args.server.clone(),
        args.data.clone(),
        args.user.clone(),
        TokenSource::DevTokenRoute,
    );
    config.cache_capacity_bytes = 1024 * 1024;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    if let Some(budget) = args.background {
        let report = runtime.block_on(chatsync_core::background_sync_at(config, budget));
        match report.error {
            None => println!("background ok online={}", report.online),
            Some(e) => println!("background error {}", e.replace('\n', " ")),
        }
        println!("done");
        return;
    }
    let client = match ChatClient::new(config) {
        Ok(c) => c,
        Err(e) => {
            println!("open-error {} {}", kind(&e), one_line(&e));
            std::process::exit(5);
        }
    };
    println!("opened");
    runtime.block_on(life(&client, &args));
    println!("done");
}

async fn life(client: &ChatClient, args: &Args) {
    let mut rng = fastrand::Rng::with_seed(args.seed);
    if client.session().ok().flatten().is_none() {
        println!("step login");
        if let Err(e) = client.login(args.user.clone(), None).await {
            println!("error login {} {}", kind(&e), one_line(&e));
        }
    }
    let mut sent = 0u32;
    for _ in 0..args.ops {
        let roll = rng.u32(0..100);
        match roll {
            0..=44 => {
                let room = match &args.bad_room {
                    Some(bad) if rng.u32(0..100) < 4 => bad.clone(),
                    _ if args.rooms.is_empty() => continue,
                    _ => args.rooms[rng.usize(..args.rooms.len())].clone(),
                };
                let text = format!("{}/{}/{}", args.user, args.tag, sent);
                sent += 1;
                println!("sending {room} {text}");
                match client.send_text(room.clone(), text.clone()).await {
                    Ok(echo) => {
                        println!("queued {} {room} {text}", echo.local_id.unwrap_or_default())
                    }
                    Err(e) => println!("error send {} {}", kind(&e), one_line(&e)),
                }
            }
            45..=69 => {
                println!("step sync");
                match client.sync_once().await {
                    Ok(r) => println!(
                        "synced online={} sent={} pending={} failed={}",
                        r.online, r.sent, r.pending, r.failed
                    ),
                    Err(e) => println!("error sync {} {}", kind(&e), one_line(&e)),
                }
            }
            70..=79 => {
                println!("step outbox");
                if let Err(e) = client.outbox() {
                    println!("error outbox {} {}", kind(&e), one_line(&e));
                }
            }
            80..=86 => {
                println!("step retry");
                let failed = client.outbox().unwrap_or_default();
                if let Some(entry) = failed.iter().find(|e| e.state == MessageState::Failed) {
                    if let Err(e) = client.retry(entry.local_id.clone()).await {
                        println!("error retry {} {}", kind(&e), one_line(&e));
                    }
                }
            }
            87..=92 => {
                // Mostly a failed one (what an app offers to discard), sometimes a pending one.
                let outbox = client.outbox().unwrap_or_default();
                let pick = if rng.bool() {
                    outbox.iter().find(|e| e.state == MessageState::Failed)
                } else {
                    outbox.get(rng.usize(..outbox.len().max(1)))
                };
                if let Some(entry) = pick {
                    println!("discarding {}", entry.local_id);
                    match client.discard(entry.local_id.clone()).await {
                        Ok(()) => println!("discarded {}", entry.local_id),
                        Err(e) => println!("error discard {} {}", kind(&e), one_line(&e)),
                    }
                }
            }
            _ => {
                println!("step messages");
                for room in &args.rooms {
                    if let Err(e) = client.messages(room.clone(), 50, None) {
                        println!("error messages {} {}", kind(&e), one_line(&e));
                    }
                }
            }
        }
        // Pacing between operations (not synchronisation: the torture kills at random anyway).
        tokio::time::sleep(Duration::from_millis(rng.u64(0..=20))).await;
    }
}
