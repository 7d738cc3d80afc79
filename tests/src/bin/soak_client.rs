//! `chatsync-soak-client`: one device of the convergence soak, run as a child process so the
//! soak can SIGKILL it at any instruction. Built on chatsync-core exactly as an app uses it:
//! queue a message or make a change of the chat model (edit or delete one of its own messages,
//! toggle a reaction on someone else's, mark a room read: `--chat-share` of the iterations),
//! sync, repeat; then keep changing and syncing until killed. With `--live` it runs the core's
//! scheduler instead (live long-poll, flush on queueing) and only queues.
//!
//! It prints one line per event on stdout (line-buffered, so a killed child never leaves half a
//! line): `queued ROOM LOCAL_ID TEXT` once `send_text` has returned (the message is durably
//! queued: from here on it must reach the server exactly once, under that txn id, whatever its
//! text becomes by edits), `change OP ok|none|error KIND` for a chat-model change (`none`: no
//! message to change), `sync online|offline SENT PENDING FAILED`, `sync-error KIND TEXT`,
//! `send-error TEXT`, and `done` when every send was queued.

use std::path::PathBuf;
use std::time::Duration;

use chatsync_core::{AppState, ChatClient, ChatError, ClientConfig, MessageState, TokenSource};
use clap::Parser;

/// One soak device.
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
    /// Room ids to send to, comma-separated.
    #[arg(long, value_delimiter = ',')]
    rooms: Vec<String>,
    /// Seed of this incarnation's choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Tag that makes texts unique across incarnations.
    #[arg(long)]
    tag: String,
    /// Messages to queue (this incarnation).
    #[arg(long, default_value_t = 20)]
    sends: u32,
    /// Pause between iterations, at most this many milliseconds (pacing, not synchronisation).
    #[arg(long, default_value_t = 100)]
    pause_ms: u64,
    /// Run as a foreground app does: the core's scheduler delivers (live long-poll, outbox
    /// flushes on queueing) and this loop only queues messages.
    #[arg(long)]
    live: bool,
    /// Share of the iterations that make a chat-model change instead of a send.
    #[arg(long, default_value_t = 0.25)]
    chat_share: f64,
}

/// The reaction keys devices toggle: few, so that members meet on the same key.
const KEYS: [&str; 3] = ["👍", "🎉", "❤️"];

/// One chat-model change on a random room: its name and outcome (`None`: nothing to change).
async fn change(
    client: &ChatClient,
    args: &Args,
    rng: &mut fastrand::Rng,
    edits: &mut u32,
) -> (&'static str, Option<Result<(), ChatError>>) {
    let room = args.rooms[rng.usize(..args.rooms.len())].clone();
    let recent = match client.messages(room.clone(), 30, None) {
        Ok(m) => m,
        Err(e) => return ("read", Some(Err(e))),
    };
    let mine = |m: &&chatsync_core::ChatMessage| m.sender.id == args.user && !m.deleted;
    let roll = rng.f64();
    if roll < 0.3 {
        // Edit one of its own messages, queued or sent.
        let candidates: Vec<_> = recent.iter().filter(mine).collect();
        if candidates.is_empty() {
            return ("edit", None);
        }
        let target = candidates[rng.usize(..candidates.len())];
        let text = format!("{}/{}/edit{}", args.user, args.tag, edits);
        *edits += 1;
        let r = client.edit_message(room, target.id.clone(), text).await;
        ("edit", Some(r))
    } else if roll < 0.4 {
        // Delete one of its own sent messages (a queued one would be dropped, never sent,
        // which the harness cannot tell from a loss).
        let candidates: Vec<_> = recent
            .iter()
            .filter(mine)
            .filter(|m| m.state == MessageState::Sent)
            .collect();
        if candidates.is_empty() {
            return ("delete", None);
        }
        let target = candidates[rng.usize(..candidates.len())];
        let r = client.delete_message(room, target.id.clone()).await;
        ("delete", Some(r))
    } else if roll < 0.8 {
        // Toggle a reaction on someone else's message.
        let candidates: Vec<_> = recent
            .iter()
            .filter(|m| m.sender.id != args.user && !m.deleted)
            .collect();
        if candidates.is_empty() {
            return ("react", None);
        }
        let target = candidates[rng.usize(..candidates.len())];
        let key = KEYS[rng.usize(..KEYS.len())].to_owned();
        let r = client
            .toggle_reaction(room, target.id.clone(), key)
            .await
            .map(|_| ());
        ("react", Some(r))
    } else {
        ("read", Some(client.mark_read(room).await))
    }
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

fn main() {
    let args = Args::parse();
    let mut config = ClientConfig::new(
        args.server.clone(),
        args.data.clone(),
        args.user.clone(),
        TokenSource::DevTokenRoute,
    );
    config.cache_capacity_bytes = 1024 * 1024;
    let client = match ChatClient::new(config) {
        Ok(c) => c,
        Err(e) => {
            println!("open-error {} {e}", kind(&e));
            std::process::exit(5);
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        if client.session().ok().flatten().is_none() {
            if let Err(e) = client.login(args.user.clone(), None).await {
                println!("login-error {} {e}", kind(&e));
            }
        }
        if args.live {
            client.set_app_state(AppState::Active);
            client.start();
        }
        let mut rng = fastrand::Rng::with_seed(args.seed);
        let mut sent = 0;
        let mut edits = 0;
        loop {
            if !args.rooms.is_empty() && rng.f64() < args.chat_share {
                match change(&client, &args, &mut rng, &mut edits).await {
                    (op, None) => println!("change {op} none"),
                    (op, Some(Ok(()))) => println!("change {op} ok"),
                    (op, Some(Err(e))) => println!("change {op} error {} {e}", kind(&e)),
                }
            } else if sent < args.sends && !args.rooms.is_empty() {
                let room = &args.rooms[rng.usize(..args.rooms.len())];
                let text = format!("{}/{}/{}", args.user, args.tag, sent);
                match client.send_text(room.clone(), text.clone()).await {
                    Ok(echo) => println!(
                        "queued {room} {} {text}",
                        echo.local_id.as_deref().unwrap_or(&echo.id)
                    ),
                    Err(e) => println!("send-error {} {e}", kind(&e)),
                }
                sent += 1;
                if sent == args.sends {
                    println!("done");
                }
            }
            if args.live {
                // The scheduler syncs and flushes; this loop only paces the sends.
                let pause = rng.u64(0..=args.pause_ms * 2);
                tokio::time::sleep(Duration::from_millis(pause)).await;
                continue;
            }
            match client.sync_once().await {
                Ok(r) => println!(
                    "sync {} {} {} {}",
                    if r.online { "online" } else { "offline" },
                    r.sent,
                    r.pending,
                    r.failed
                ),
                Err(e) => println!("sync-error {} {e}", kind(&e)),
            }
            let pause = rng.u64(0..=args.pause_ms);
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
    });
}
