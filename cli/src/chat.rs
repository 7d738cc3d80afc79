//! `chatsync chat`: an interactive chat on the core, line by line, like an app's chat screen.
//!
//! It is a thin loop over the core, rendering from a timeline as an app's screen does: the
//! timeline shows the room's history from the store at once and sends a diff for every change
//! (a new message, an echo turning sent or failed); the core's scheduler (probe, live
//! long-poll, outbox flush) runs as it does in an app; the client's events give the status line;
//! a typed line goes to `send_text`. So it keeps working offline (lines are queued, the status
//! line says so) and catches up when the server is back, with no network code of its own and no
//! re-reading of the store. Output is plain lines, so it works in a terminal and through pipes.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::sync::Arc;
use std::time::Duration;

use chatsync_core::{
    apply_diffs, AppState, ChatClient, ChatMessage, ClientEvent, ClientListener, MessageState,
    NetworkStatus, TimelineDiff, TimelineListener,
};
use tokio::sync::mpsc;

use crate::args::{ChatArgs, GlobalArgs};
use crate::device::{direct_room, user_id};
use crate::exit::{CliError, Exit};
use crate::render::{annotations, body, one_line, short_time};

/// On end of input, how long to wait for queued lines to be delivered while online.
const DRAIN_ON_EXIT: Duration = Duration::from_secs(10);

/// Forwards the core's events into the chat loop.
struct ChannelListener(mpsc::UnboundedSender<ClientEvent>);

impl ClientListener for ChannelListener {
    fn on_event(&self, event: ClientEvent) {
        let _ = self.0.send(event);
    }
}

/// Forwards the timeline's diffs into the chat loop.
struct DiffListener(mpsc::UnboundedSender<Vec<TimelineDiff>>);

impl TimelineListener for DiffListener {
    fn on_update(&self, diffs: Vec<TimelineDiff>) {
        let _ = self.0.send(diffs);
    }
}

/// What the screen shows: the timeline's items (kept equal to the core's by applying its
/// diffs), which of them were printed and in which state, and the status line.
struct ChatView {
    /// The timeline's items, oldest first.
    items: Vec<ChatMessage>,
    /// Printed messages by id (stable across echo -> sent) and what was printed of them.
    shown: HashMap<String, Shown>,
    /// How many of the first reset's newest items to print (the rest is older history).
    history: usize,
    network: NetworkStatus,
    pending: u32,
    failed: u32,
    /// The status line last printed, to print it only when it changes.
    last_status: Option<String>,
}

/// What was printed of a message: a new line is printed when one of these changes.
#[derive(Clone, Debug, PartialEq)]
struct Shown {
    state: MessageState,
    text: String,
    deleted: bool,
    reactions: String,
}

impl Shown {
    fn of(message: &ChatMessage) -> Shown {
        Shown {
            state: message.state,
            text: message.text.clone(),
            deleted: message.deleted,
            reactions: annotations(message),
        }
    }
}

/// `[06:00] Alice: hello (pending)`.
fn chat_line(message: &ChatMessage) -> String {
    let time = short_time(&message.created_at);
    let hhmm = time.rsplit(' ').next().unwrap_or(&time);
    let marker = match message.state {
        MessageState::Sent => String::new(),
        MessageState::Pending => " (pending)".to_owned(),
        MessageState::Failed => format!(
            " (failed: {})",
            message.failure_reason.as_deref().unwrap_or("rejected")
        ),
    };
    format!(
        "[{hhmm}] {}: {}{}{marker}",
        message.sender.name,
        body(message),
        annotations(message)
    )
}

impl ChatView {
    fn new(history: usize) -> Self {
        ChatView {
            items: Vec::new(),
            shown: HashMap::new(),
            history,
            network: NetworkStatus::Unknown,
            pending: 0,
            failed: 0,
            last_status: None,
        }
    }

    /// Applies the timeline's diffs; returns the lines for messages not printed yet and for
    /// state changes of printed ones, oldest first.
    fn on_diffs(&mut self, diffs: &[TimelineDiff]) -> Vec<String> {
        let first = self.shown.is_empty() && self.items.is_empty();
        apply_diffs(&mut self.items, diffs);
        let skip = if first {
            self.items.len().saturating_sub(self.history)
        } else {
            0
        };
        let mut lines = Vec::new();
        for (i, message) in self.items.iter().enumerate() {
            let now = Shown::of(message);
            match self.shown.get(&message.id).cloned() {
                None if i < skip => {
                    // Older history than asked for: known, not printed.
                    self.shown.insert(message.id.clone(), now);
                }
                None => {
                    self.shown.insert(message.id.clone(), now);
                    lines.push(chat_line(message));
                }
                Some(before) if before != now => {
                    let text = one_line(&message.text);
                    lines.push(if now.deleted && !before.deleted {
                        format!("  ✗ deleted: {}", one_line(&before.text))
                    } else if now.text != before.text {
                        format!("  ✎ edited: {text}")
                    } else if now.state != before.state {
                        match message.state {
                            MessageState::Sent => format!("  ✓ sent: {text}"),
                            MessageState::Failed => format!(
                                "  ✗ failed ({}): {text}",
                                message.failure_reason.as_deref().unwrap_or("rejected")
                            ),
                            MessageState::Pending => format!("  … queued again: {text}"),
                        }
                    } else {
                        format!("  reactions on \"{text}\":{}", now.reactions)
                    });
                    self.shown.insert(message.id.clone(), now);
                }
                Some(_) => {}
            }
        }
        lines
    }

    /// Applies a status event; returns the status line when it changed.
    fn apply(&mut self, event: &ClientEvent) -> Option<String> {
        match event {
            ClientEvent::NetworkStatusChanged { status } => self.network = *status,
            ClientEvent::OutboxChanged { pending, failed } => {
                self.pending = *pending;
                self.failed = *failed;
            }
            _ => return None,
        }
        let network = match self.network {
            NetworkStatus::Online => "online",
            NetworkStatus::Offline => "offline",
            NetworkStatus::Unknown => "connecting",
        };
        let mut status = format!("-- {network} | {} pending", self.pending);
        if self.failed > 0 {
            status.push_str(&format!(" | {} failed", self.failed));
        }
        status.push_str(" --");
        if self.last_status.as_deref() == Some(status.as_str()) {
            return None;
        }
        self.last_status = Some(status.clone());
        Some(status)
    }
}

fn print_lines(lines: &[String]) {
    if lines.is_empty() {
        return;
    }
    let mut out = std::io::stdout().lock();
    for line in lines {
        let _ = writeln!(out, "{line}");
    }
    let _ = out.flush();
}

/// Reads stdin on a thread of its own: a blocking read cannot be cancelled, and a thread left
/// blocked in it does not keep the process alive once `main` returns (tokio's stdin would make
/// the runtime's shutdown wait for one more line).
fn spawn_stdin_reader() -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            match line {
                Ok(line) => {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
    });
    rx
}

const HELP: &str = "type a message and press Enter to send; /sync syncs now, /quit (or Ctrl-D) leaves, //text sends /text";

/// What a typed line asks for.
#[derive(Debug, PartialEq, Eq)]
enum Input {
    Send(String),
    Sync,
    Quit,
    Help,
    Nothing,
}

fn parse_input(line: &str) -> Input {
    let trimmed = line.trim_end_matches(['\r', '\n']);
    if trimmed.trim().is_empty() {
        return Input::Nothing;
    }
    if let Some(rest) = trimmed.strip_prefix("//") {
        return Input::Send(format!("/{rest}"));
    }
    match trimmed.trim() {
        "/quit" | "/exit" | "/q" => Input::Quit,
        "/sync" => Input::Sync,
        t if t.starts_with('/') => Input::Help,
        _ => Input::Send(trimmed.to_owned()),
    }
}

/// `chatsync chat --with USER`.
pub async fn chat(
    client: &Arc<ChatClient>,
    global: &GlobalArgs,
    args: ChatArgs,
) -> Result<Exit, CliError> {
    let me = user_id(global)?;
    let room_id = direct_room(client, &me, &args.with).await?;
    let mut view = ChatView::new(args.history as usize);

    println!("chatting with {} in room {room_id}; {HELP}", args.with);
    let timeline = client.timeline(room_id.clone())?;
    // Enough history for the screen: the store first, then the server (offline: what is held).
    while timeline.items().len() < args.history as usize {
        match timeline.paginate_backwards(args.history).await {
            Ok(page) if page.has_more && page.added > 0 => {}
            _ => break,
        }
    }
    let (diffs_tx, mut diffs) = mpsc::unbounded_channel();
    let timeline_subscription = timeline.subscribe(Arc::new(DiffListener(diffs_tx)));

    let (events_tx, mut events) = mpsc::unbounded_channel();
    let subscription = client.subscribe(Arc::new(ChannelListener(events_tx)));
    // A terminal has no platform reachability monitor: say "reachable" and let the core's probe
    // decide what is true.
    client.set_app_state(AppState::Active);
    client.set_network_reachable(true);
    client.start();

    let mut input = spawn_stdin_reader();
    let mut input_open = true;
    let mut drain_deadline: Option<tokio::time::Instant> = None;

    loop {
        if !input_open {
            if view.pending == 0 {
                break;
            }
            if view.network != NetworkStatus::Online {
                println!("-- offline: leaving with {} message(s) queued; they are sent on the next sync --", view.pending);
                break;
            }
        }
        let deadline = drain_deadline
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            line = input.recv(), if input_open => match line.map(|l| parse_input(&l)) {
                None | Some(Input::Quit) => {
                    input_open = false;
                    // The outbox as stored now, not as the last event said (it may be in flight).
                    view.pending = client.outbox()?.iter().filter(|e| e.state == MessageState::Pending).count() as u32;
                    drain_deadline = Some(tokio::time::Instant::now() + DRAIN_ON_EXIT);
                    if view.pending > 0 && view.network == NetworkStatus::Online {
                        println!("-- delivering {} queued message(s) before leaving --", view.pending);
                    }
                }
                Some(Input::Nothing) => {}
                Some(Input::Help) => println!("{HELP}"),
                Some(Input::Sync) => {
                    if let Err(e) = client.sync_once().await {
                        eprintln!("sync: {}", CliError::from(e));
                    }
                }
                Some(Input::Send(text)) => {
                    if let Err(e) = client.send_text(room_id.clone(), text).await {
                        eprintln!("not sent: {}", CliError::from(e));
                    }
                }
            },
            update = diffs.recv() => {
                let Some(update) = update else { break };
                let lines = view.on_diffs(&update);
                print_lines(&lines);
                // The screen is open: what it shows is read.
                if !lines.is_empty() {
                    if let Err(e) = client.mark_read(room_id.clone()).await {
                        eprintln!("cannot mark read: {}", CliError::from(e));
                    }
                }
            },
            event = events.recv() => {
                let Some(event) = event else { break };
                if let ClientEvent::TypingChanged { room_id: typing_in, user_ids } = &event {
                    if *typing_in == room_id {
                        let line = if user_ids.is_empty() {
                            "-- nobody is typing --".to_owned()
                        } else {
                            format!("-- {} typing --", user_ids.join(", "))
                        };
                        print_lines(&[line]);
                    }
                    continue;
                }
                print_lines(&view.apply(&event).into_iter().collect::<Vec<_>>());
            },
            _ = tokio::time::sleep_until(deadline), if drain_deadline.is_some() => {
                println!("-- leaving with {} message(s) still queued; they are sent on the next sync --", view.pending);
                break;
            },
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    subscription.cancel();
    timeline_subscription.cancel();
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatsync_core::ChatUser;

    fn message(id: &str, server: Option<u64>, state: MessageState, text: &str) -> ChatMessage {
        ChatMessage {
            id: id.into(),
            server_id: server,
            local_id: None,
            room_id: "r1".into(),
            text: text.into(),
            created_at: "2026-11-25T06:07:08.000Z".into(),
            sender: ChatUser {
                id: "bob".into(),
                name: "bob".into(),
                avatar_url: None,
            },
            state,
            failure_reason: None,
            parts: vec![],
            edited_at: None,
            deleted: false,
            reactions: vec![],
            read_by: vec![],
            pending_change: false,
        }
    }

    #[test]
    fn new_messages_print_once_oldest_first_and_history_is_cut_to_the_asked_size() {
        let mut view = ChatView::new(2);
        let reset = TimelineDiff::Reset {
            items: vec![
                message("1", Some(1), MessageState::Sent, "old"),
                message("2", Some(2), MessageState::Sent, "first"),
                message("3", Some(3), MessageState::Sent, "second"),
            ],
        };
        assert_eq!(
            view.on_diffs(&[reset.clone()]),
            vec!["[06:07] bob: first", "[06:07] bob: second"]
        );
        assert!(view.on_diffs(&[reset]).is_empty(), "nothing printed twice");
        let pushed = TimelineDiff::PushBack {
            item: message("4", Some(4), MessageState::Sent, "third"),
        };
        assert_eq!(view.on_diffs(&[pushed]), vec!["[06:07] bob: third"]);
    }

    #[test]
    fn an_echo_that_gets_sent_prints_a_delivery_line_not_a_duplicate() {
        let mut view = ChatView::new(10);
        let echo = message("txn", None, MessageState::Pending, "hi");
        assert_eq!(
            view.on_diffs(&[TimelineDiff::Reset { items: vec![echo] }]),
            vec!["[06:07] bob: hi (pending)"]
        );
        let sent = message("txn", Some(9), MessageState::Sent, "hi");
        assert_eq!(
            view.on_diffs(&[TimelineDiff::Set {
                index: 0,
                item: sent
            }]),
            vec!["  ✓ sent: hi"]
        );
    }

    #[test]
    fn the_status_line_prints_only_on_change() {
        let mut view = ChatView::new(10);
        assert_eq!(
            view.apply(&ClientEvent::NetworkStatusChanged {
                status: NetworkStatus::Offline
            })
            .as_deref(),
            Some("-- offline | 0 pending --")
        );
        assert_eq!(
            view.apply(&ClientEvent::OutboxChanged {
                pending: 0,
                failed: 0
            }),
            None
        );
        assert_eq!(
            view.apply(&ClientEvent::OutboxChanged {
                pending: 2,
                failed: 1
            })
            .as_deref(),
            Some("-- offline | 2 pending | 1 failed --")
        );
    }

    #[test]
    fn typed_lines_become_sends_or_commands() {
        assert_eq!(parse_input("hello"), Input::Send("hello".into()));
        assert_eq!(parse_input("  "), Input::Nothing);
        assert_eq!(parse_input("/quit"), Input::Quit);
        assert_eq!(parse_input("/sync"), Input::Sync);
        assert_eq!(parse_input("/what"), Input::Help);
        assert_eq!(parse_input("//shrug"), Input::Send("/shrug".into()));
    }
}
