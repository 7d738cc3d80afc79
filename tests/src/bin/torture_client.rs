//! `chatsync-torture-client`: one short life of a device for the crash torture
//! (`chatsync-torture`), run as a child process so it can be SIGKILLed at any instruction,
//! opening included. Built on chatsync-core exactly as an app uses it.
//!
//! A life: open the store (or, in `--background` lives, run the one-shot
//! `background_sync_at` an OS background task runs), log in on first use, then a random run of
//! the app's operations: send, sync, read the outbox, retry, discard, read messages, and (a
//! quarter of them, `--change-share`) a chat-model change: edit one of its own messages (sent
//! or still queued), turn on a reaction with a key unique to this life and operation (so the
//! harness can find it on the server; it never turns one off), mark a room read, now and then
//! delete one of its own sent messages. Most lives are killed part way; the rest end by
//! themselves.
//!
//! It prints one line per step on stdout (Rust's stdout is line-buffered, so a killed child
//! never leaves half a line), which is how the torture knows what was promised:
//! - `opening` at start, `opened` once the store is open, `open-error KIND TEXT`;
//! - `sending ROOM TEXT` before `send_text`, `queued LOCAL_ID ROOM TEXT` once it returned:
//!   from then on the message must reach the server exactly once (or stay queued);
//! - `discarding LOCAL_ID KIND ROOM TARGET TEXT` before `discard` (from then on the entry may be
//!   gone; KIND is the entry's `send`, `edit`, `delete`, `react` or `receipt`, TARGET the
//!   message a change is about or `-`, TEXT a send's or an edit's text, a reaction's key, or
//!   `-`), `discarded LOCAL_ID` after;
//! - `changing OP ROOM TARGET ARG` before a chat-model change and `changed OP ROOM TARGET ARG
//!   [on|off]` once the call returned `Ok` (the moment the app is told: from then on the change
//!   must land exactly once, like a queued send): `edit` (TARGET the message's app id, ARG the
//!   new text), `delete` (ARG `-`), `react` (ARG the key; `on`/`off` is what the toggle
//!   returned), `read` (TARGET `-`, ARG the newest server id the room showed before the call,
//!   which the receipt must reach);
//! - `step NAME` before each other operation, `error OP KIND TEXT` for a failed one;
//! - `done` when the life ends by itself.

use std::path::PathBuf;
use std::time::Duration;

use chatsync_core::{ChangeKind, ChatClient, ChatError, ClientConfig, MessageState, TokenSource};
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
    /// Share of the operations (percent) that make a chat-model change (protocol v2).
    #[arg(long, default_value_t = 25)]
    change_share: u32,
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

fn kind_name(kind: ChangeKind) -> &'static str {
    match kind {
        ChangeKind::Send => "send",
        ChangeKind::Edit => "edit",
        ChangeKind::Delete => "delete",
        ChangeKind::React => "react",
        ChangeKind::Receipt => "receipt",
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
    for op in 0..args.ops {
        if !args.rooms.is_empty() && rng.u32(0..100) < args.change_share {
            change(client, args, &mut rng, op).await;
            tokio::time::sleep(Duration::from_millis(rng.u64(0..=20))).await;
            continue;
        }
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
                    println!(
                        "discarding {} {} {} {} {}",
                        entry.local_id,
                        kind_name(entry.kind),
                        entry.room_id,
                        entry.target_id.as_deref().unwrap_or("-"),
                        if entry.text.is_empty() {
                            "-"
                        } else {
                            &entry.text
                        }
                    );
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

/// One chat-model change in a random room of the user, printed as `changing ...` before the
/// call and `changed ...` once it returned `Ok`. `op` makes texts and reaction keys unique.
async fn change(client: &ChatClient, args: &Args, rng: &mut fastrand::Rng, op: u32) {
    let room = args.rooms[rng.usize(..args.rooms.len())].clone();
    let recent = match client.messages(room.clone(), 30, None) {
        Ok(m) => m,
        Err(e) => {
            println!("error messages {} {}", kind(&e), one_line(&e));
            return;
        }
    };
    let mine = |m: &&chatsync_core::ChatMessage| m.sender.id == args.user && !m.deleted;
    let pick = |rng: &mut fastrand::Rng, c: Vec<&chatsync_core::ChatMessage>| {
        (!c.is_empty()).then(|| c[rng.usize(..c.len())].id.clone())
    };
    let roll = rng.u32(0..100);
    let (name, target, arg, result) = if roll < 35 {
        // Edit one of its own messages, sent or still queued (a queued send is rewritten).
        let Some(target) = pick(rng, recent.iter().filter(mine).collect()) else {
            return;
        };
        let text = format!("{}/{}/edit{op}", args.user, args.tag);
        println!("changing edit {room} {target} {text}");
        let r = client
            .edit_message(room.clone(), target.clone(), text.clone())
            .await;
        ("edit", target, text, r.map(|()| None))
    } else if roll < 45 {
        // Delete one of its own sent messages (a queued one would be dropped unsent, which the
        // harness could not tell from a lost send).
        let candidates = recent
            .iter()
            .filter(mine)
            .filter(|m| m.state == MessageState::Sent)
            .collect();
        let Some(target) = pick(rng, candidates) else {
            return;
        };
        println!("changing delete {room} {target} -");
        let r = client.delete_message(room.clone(), target.clone()).await;
        ("delete", target, "-".to_owned(), r.map(|()| None))
    } else if roll < 80 {
        // A reaction on any message not deleted (its own or another's, sent or queued), with a
        // key no one else uses, so the harness knows it must be on the server.
        let Some(target) = pick(rng, recent.iter().filter(|m| !m.deleted).collect()) else {
            return;
        };
        let key = format!("{}.{}.{op}", args.user, args.tag);
        println!("changing react {room} {target} {key}");
        let r = client
            .toggle_reaction(room.clone(), target.clone(), key.clone())
            .await;
        ("react", target, key, r.map(Some))
    } else {
        // The receipt goes up to the room's newest held message: at least the newest sent one
        // shown now (no scheduler runs in this process, so nothing syncs meanwhile).
        let upto = recent.iter().filter_map(|m| m.server_id).max().unwrap_or(0);
        println!("changing read {room} - {upto}");
        let r = client.mark_read(room.clone()).await;
        ("read", "-".to_owned(), upto.to_string(), r.map(|()| None))
    };
    match result {
        Ok(None) => println!("changed {name} {room} {target} {arg}"),
        Ok(Some(on)) => println!(
            "changed {name} {room} {target} {arg} {}",
            if on { "on" } else { "off" }
        ),
        Err(e) => println!("error {name} {} {}", kind(&e), one_line(&e)),
    }
}
