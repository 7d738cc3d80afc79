//! The one-shot device commands (`send`, `sync`, `messages`, `rooms`, `outbox`, `retry`,
//! `discard`): each is a few calls on [`ChatClient`] plus output. No chat logic lives here.

use chatsync_core::{ChatClient, ChatError, ChatMessage, MessageState, SyncReport};

use crate::args::{
    EditArgs, GlobalArgs, JsonFlag, MessageIdArgs, MessagesArgs, OutboxIdArgs, ReactArgs,
    RoomOnly, SendArgs, TypingArgs,
};
use crate::device::{resolve_room, user_id};
use crate::exit::{CliError, Exit};
use crate::progress::ProgressGuard;
use crate::render::{message_line, outbox_line, print_json, room_line};

/// How many recent messages `send` reads back to find its message after delivery.
const READ_BACK_LIMIT: u32 = 50;

fn io_error(e: std::io::Error) -> CliError {
    CliError::internal(format!("cannot write the output: {e}"))
}

/// What one sync + flush attempt came to.
enum Delivery {
    /// The server answered: the sync ran.
    Online(SyncReport),
    /// The server could not be reached (with the core's reason when it gave one); queued
    /// messages stay queued.
    Offline(Option<String>),
    /// The server answered with an error or "busy" (5xx, 429): the core's text says which and
    /// when to retry; queued messages stay queued.
    Unavailable(String),
    /// Another failure (unauthorized, protocol...); queued messages stay queued.
    Failed(CliError),
}

/// Runs `sync_once`, with progress on a terminal.
async fn sync_and_flush(client: &ChatClient) -> Delivery {
    let progress = ProgressGuard::start(client);
    let result = client.sync_once().await;
    progress.finish();
    match result {
        Ok(report) if report.online => Delivery::Online(report),
        Ok(_) => Delivery::Offline(None),
        Err(ChatError::Offline(reason)) => Delivery::Offline(Some(reason)),
        Err(e @ ChatError::Unavailable { .. }) => Delivery::Unavailable(e.to_string()),
        Err(e) => Delivery::Failed(CliError::from(e)),
    }
}

/// ` (reason)` when there is one.
fn because(reason: &Option<String>) -> String {
    reason
        .as_deref()
        .map(|r| format!(" ({r})"))
        .unwrap_or_default()
}

/// The report printed when the sync could not reach the server: the outbox as it stands.
fn offline_report(client: &ChatClient) -> Result<SyncReport, CliError> {
    let outbox = client.outbox()?;
    let count = |state| outbox.iter().filter(|e| e.state == state).count() as u32;
    Ok(SyncReport {
        online: false,
        new_messages: Default::default(),
        sent: 0,
        pending: count(MessageState::Pending),
        failed: count(MessageState::Failed),
    })
}

/// `chatsync sync`: prints the report; exit 3 when offline.
pub async fn sync(client: &ChatClient, global: &GlobalArgs) -> Result<Exit, CliError> {
    match sync_and_flush(client).await {
        Delivery::Online(report) => {
            print_json(&report).map_err(io_error)?;
            Ok(Exit::Ok)
        }
        Delivery::Offline(reason) => {
            let report = offline_report(client)?;
            print_json(&report).map_err(io_error)?;
            eprintln!(
                "offline: {} is unreachable{}; {} message(s) still queued",
                global.server,
                because(&reason),
                report.pending
            );
            Ok(Exit::Offline)
        }
        Delivery::Unavailable(what) => {
            let report = offline_report(client)?;
            print_json(&report).map_err(io_error)?;
            eprintln!(
                "{what} (from {}); {} message(s) still queued",
                global.server, report.pending
            );
            Ok(Exit::Offline)
        }
        Delivery::Failed(e) => Err(e.context("sync failed")),
    }
}

/// The current version of `sent` in the store (it may have been delivered since).
fn read_back(client: &ChatClient, sent: &ChatMessage) -> Result<Option<ChatMessage>, CliError> {
    let key = sent.local_id.as_deref().unwrap_or(&sent.id);
    let recent = client.messages(sent.room_id.clone(), READ_BACK_LIMIT, None)?;
    Ok(recent
        .into_iter()
        .find(|m| m.local_id.as_deref() == Some(key) || m.id == key))
}

/// `chatsync send`: queues durably (exit 0 from then on, online or not), tries to deliver at
/// once, prints the message as it then stands. Exit 4 only when the server rejected it.
pub async fn send(
    client: &ChatClient,
    global: &GlobalArgs,
    args: SendArgs,
) -> Result<Exit, CliError> {
    let me = user_id(global)?;
    let room = resolve_room(client, &me, &args.target).await?;
    let echo = client
        .send_text(room, args.text)
        .await
        .map_err(|e| CliError::from(e).context("cannot queue the message"))?;
    let delivery = sync_and_flush(client).await;
    let shown = read_back(client, &echo)?.unwrap_or(echo);
    print_json(&shown).map_err(io_error)?;
    match delivery {
        Delivery::Online(_) => {}
        Delivery::Offline(reason) => {
            eprintln!(
                "queued: {} is unreachable{}; `chatsync sync` delivers it later",
                global.server,
                because(&reason)
            )
        }
        Delivery::Unavailable(what) => eprintln!(
            "queued: {what} (from {}); `chatsync sync` delivers it later",
            global.server
        ),
        Delivery::Failed(e) => eprintln!("queued: not delivered yet: {e}"),
    }
    if shown.state == MessageState::Failed {
        report_rejected(&shown.id, shown.failure_reason.as_deref());
        return Ok(Exit::Refused);
    }
    Ok(Exit::Ok)
}

/// The stderr line for a message the server refused for good, with what to do next.
fn report_rejected(local_id: &str, reason: Option<&str>) {
    eprintln!(
        "rejected by the server: {}; `chatsync retry {local_id}` or `chatsync discard {local_id}`",
        reason.unwrap_or("no reason given")
    );
}

/// `chatsync messages`: newest first, from the store.
pub async fn messages(
    client: &ChatClient,
    global: &GlobalArgs,
    args: MessagesArgs,
) -> Result<Exit, CliError> {
    let me = user_id(global)?;
    let room = resolve_room(client, &me, &args.target).await?;
    let messages = client.messages(room, args.limit, args.before)?;
    print_list(&messages, args.json, message_line)?;
    Ok(Exit::Ok)
}

/// `chatsync rooms`.
pub fn rooms(client: &ChatClient, args: JsonFlag) -> Result<Exit, CliError> {
    let rooms = client.rooms()?;
    print_list(&rooms, args.json, room_line)?;
    Ok(Exit::Ok)
}

/// `chatsync outbox`.
pub fn outbox(client: &ChatClient, args: JsonFlag) -> Result<Exit, CliError> {
    let entries = client.outbox()?;
    print_list(&entries, args.json, outbox_line)?;
    Ok(Exit::Ok)
}

/// `chatsync retry`: queues a failed message again and tries to deliver it, like `send`.
pub async fn retry(
    client: &ChatClient,
    global: &GlobalArgs,
    args: OutboxIdArgs,
) -> Result<Exit, CliError> {
    client
        .retry(args.local_id.clone())
        .await
        .map_err(|e| CliError::from(e).context(format!("cannot retry {}", args.local_id)))?;
    let delivery = sync_and_flush(client).await;
    let still_queued = client
        .outbox()?
        .into_iter()
        .find(|e| e.local_id == args.local_id);
    match &still_queued {
        None => println!("{}  sent", args.local_id),
        Some(entry) => println!("{}", outbox_line(entry)),
    }
    match delivery {
        Delivery::Online(_) => {}
        Delivery::Offline(reason) => {
            eprintln!(
                "queued: {} is unreachable{}; `chatsync sync` delivers it later",
                global.server,
                because(&reason)
            )
        }
        Delivery::Unavailable(what) => eprintln!(
            "queued: {what} (from {}); `chatsync sync` delivers it later",
            global.server
        ),
        Delivery::Failed(e) => eprintln!("queued: not delivered yet: {e}"),
    }
    match still_queued {
        Some(entry) if entry.state == MessageState::Failed => {
            report_rejected(&entry.local_id, entry.failure_reason.as_deref());
            Ok(Exit::Refused)
        }
        _ => Ok(Exit::Ok),
    }
}

/// `chatsync discard`.
pub async fn discard(client: &ChatClient, args: OutboxIdArgs) -> Result<Exit, CliError> {
    client
        .discard(args.local_id.clone())
        .await
        .map_err(|e| CliError::from(e).context(format!("cannot discard {}", args.local_id)))?;
    println!("{}  discarded", args.local_id);
    Ok(Exit::Ok)
}

/// Prints `items` as one JSON array (`--json`) or one human line each.
fn print_list<T: serde::Serialize>(
    items: &[T],
    json: bool,
    line: fn(&T) -> String,
) -> Result<(), CliError> {
    if json {
        print_json(items).map_err(io_error)
    } else {
        for item in items {
            println!("{}", line(item));
        }
        Ok(())
    }
}

/// The message `id` names, and its room.
fn find_message(client: &ChatClient, id: &str) -> Result<ChatMessage, CliError> {
    client.message(id.to_owned())?.ok_or_else(|| CliError {
        exit: Exit::NotFound,
        message: format!("no message {id} on this device (see `chatsync messages`)"),
    })
}

/// After a change was queued: tries to deliver it (like `send`), prints the message as it then
/// stands, says when it stays queued.
async fn deliver_and_show(
    client: &ChatClient,
    global: &GlobalArgs,
    id: &str,
) -> Result<Exit, CliError> {
    let delivery = sync_and_flush(client).await;
    if let Some(shown) = client.message(id.to_owned())? {
        print_json(&shown).map_err(io_error)?;
    }
    match delivery {
        Delivery::Online(report) if report.failed == 0 || report.pending == 0 => {}
        Delivery::Online(_) => {}
        Delivery::Offline(reason) => eprintln!(
            "queued: {} is unreachable{}; `chatsync sync` delivers it later",
            global.server,
            because(&reason)
        ),
        Delivery::Unavailable(what) => eprintln!(
            "queued: {what} (from {}); `chatsync sync` delivers it later",
            global.server
        ),
        Delivery::Failed(e) => eprintln!("queued: not delivered yet: {e}"),
    }
    let refused = client
        .outbox()?
        .into_iter()
        .find(|e| e.state == MessageState::Failed && e.target_id.as_deref() == Some(id));
    if let Some(entry) = refused {
        report_rejected(&entry.local_id, entry.failure_reason.as_deref());
        return Ok(Exit::Refused);
    }
    Ok(Exit::Ok)
}

/// `chatsync edit ID TEXT`.
pub async fn edit(client: &ChatClient, global: &GlobalArgs, args: EditArgs) -> Result<Exit, CliError> {
    let message = find_message(client, &args.id)?;
    client
        .edit_message(message.room_id, args.id.clone(), args.text)
        .await
        .map_err(|e| CliError::from(e).context(format!("cannot edit {}", args.id)))?;
    deliver_and_show(client, global, &message.id).await
}

/// `chatsync delete ID`.
pub async fn delete(
    client: &ChatClient,
    global: &GlobalArgs,
    args: MessageIdArgs,
) -> Result<Exit, CliError> {
    let message = find_message(client, &args.id)?;
    client
        .delete_message(message.room_id, args.id.clone())
        .await
        .map_err(|e| CliError::from(e).context(format!("cannot delete {}", args.id)))?;
    if message.state != MessageState::Sent {
        // It was still queued: dropped, never sent.
        println!("{}  deleted before it was sent", args.id);
        return Ok(Exit::Ok);
    }
    deliver_and_show(client, global, &message.id).await
}

/// `chatsync react ID KEY`: toggles.
pub async fn react(client: &ChatClient, global: &GlobalArgs, args: ReactArgs) -> Result<Exit, CliError> {
    let message = find_message(client, &args.id)?;
    client
        .toggle_reaction(message.room_id, args.id.clone(), args.key)
        .await
        .map_err(|e| CliError::from(e).context(format!("cannot react to {}", args.id)))?;
    deliver_and_show(client, global, &message.id).await
}

/// `chatsync read (--room ID | --with USER)`.
pub async fn read(client: &ChatClient, global: &GlobalArgs, args: RoomOnly) -> Result<Exit, CliError> {
    let me = user_id(global)?;
    let room = resolve_room(client, &me, &args.target).await?;
    client
        .mark_read(room.clone())
        .await
        .map_err(|e| CliError::from(e).context(format!("cannot mark {room} read")))?;
    let delivery = sync_and_flush(client).await;
    if let Some(summary) = client.rooms()?.into_iter().find(|r| r.id == room) {
        print_json(&summary).map_err(io_error)?;
    }
    if let Delivery::Offline(_) | Delivery::Unavailable(_) = delivery {
        eprintln!("queued: the receipt goes out with the next sync");
    }
    Ok(Exit::Ok)
}

/// `chatsync typing (--room ID | --with USER) [--stop]`: now or not at all (never queued).
pub async fn typing(client: &ChatClient, global: &GlobalArgs, args: TypingArgs) -> Result<Exit, CliError> {
    let me = user_id(global)?;
    let room = resolve_room(client, &me, &args.target).await?;
    client
        .set_typing(room, !args.stop)
        .await
        .map_err(|e| CliError::from(e).context("cannot say you are typing"))?;
    Ok(Exit::Ok)
}
