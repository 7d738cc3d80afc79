//! `chatsync chat`: an interactive chat on the core, line by line, like an app's chat screen.
//!
//! It is a thin loop over the core: history comes from the store at once; the core's scheduler
//! (probe, live long-poll, outbox flush) runs as it does in an app; the listener's events say when
//! to re-read the store and redraw; a typed line goes to `send_text`. So it keeps working offline
//! (lines are queued, the status line says so) and catches up when the server is back, with no
//! network code of its own. Output is plain lines, so it works in a terminal and through pipes.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::sync::Arc;
use std::time::Duration;

use chatsync_core::{
    AppState, ChatClient, ChatMessage, ClientEvent, ClientListener, MessageState, NetworkStatus,
};
use tokio::sync::mpsc;

use crate::args::{ChatArgs, GlobalArgs};
use crate::device::{direct_room, user_id};
use crate::exit::{CliError, Exit};
use crate::render::{one_line, short_time};

/// How many recent messages are re-read from the store after a change.
const REFRESH_LIMIT: u32 = 100;
/// On end of input, how long to wait for queued lines to be delivered while online.
const DRAIN_ON_EXIT: Duration = Duration::from_secs(10);

/// Forwards the core's events into the chat loop.
struct ChannelListener(mpsc::UnboundedSender<ClientEvent>);

impl ClientListener for ChannelListener {
    fn on_event(&self, event: ClientEvent) {
        let _ = self.0.send(event);
    }
}

/// What the screen shows: which messages were printed (and in which state) and the status line.
struct ChatView {
    room_id: String,
    /// Key: the local id for messages sent from this device (stable across echo -> sent), the
    /// message id otherwise.
    shown: HashMap<String, MessageState>,
    network: NetworkStatus,
    pending: u32,
    failed: u32,
    /// The status line last printed, to print it only when it changes.
    last_status: Option<String>,
}

fn key_of(message: &ChatMessage) -> String {
    message
        .local_id
        .clone()
        .unwrap_or_else(|| message.id.clone())
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
        "[{hhmm}] {}: {}{marker}",
        message.user.name,
        one_line(&message.text)
    )
}

impl ChatView {
    fn new(room_id: String) -> Self {
        ChatView {
            room_id,
            shown: HashMap::new(),
            network: NetworkStatus::Unknown,
            pending: 0,
            failed: 0,
            last_status: None,
        }
    }

    /// Lines for messages not shown yet and for state changes of shown ones, oldest first.
    /// `newest_first` is what `ChatClient::messages` returns.
    fn update(&mut self, newest_first: &[ChatMessage]) -> Vec<String> {
        let mut lines = Vec::new();
        for message in newest_first.iter().rev() {
            let key = key_of(message);
            match self.shown.insert(key, message.state) {
                None => lines.push(chat_line(message)),
                Some(before) if before != message.state => match message.state {
                    MessageState::Sent => {
                        lines.push(format!("  ✓ sent: {}", one_line(&message.text)))
                    }
                    MessageState::Failed => lines.push(format!(
                        "  ✗ failed ({}): {}",
                        message.failure_reason.as_deref().unwrap_or("rejected"),
                        one_line(&message.text)
                    )),
                    MessageState::Pending => {
                        lines.push(format!("  … queued again: {}", one_line(&message.text)))
                    }
                },
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
    let mut view = ChatView::new(room_id.clone());

    println!("chatting with {} in room {room_id}; {HELP}", args.with);
    let history = client.messages(room_id.clone(), args.history, None)?;
    print_lines(&view.update(&history));

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
                    let recent = client.messages(room_id.clone(), REFRESH_LIMIT, None)?;
                    print_lines(&view.update(&recent));
                }
                Some(Input::Send(text)) => match client.send_text(room_id.clone(), text).await {
                    Ok(_) => {
                        let recent = client.messages(room_id.clone(), REFRESH_LIMIT, None)?;
                        print_lines(&view.update(&recent));
                    }
                    Err(e) => eprintln!("not sent: {}", CliError::from(e)),
                },
            },
            event = events.recv() => {
                let Some(event) = event else { break };
                // Take every event already waiting, so a burst costs one store read.
                let mut batch = vec![event];
                while let Ok(more) = events.try_recv() {
                    batch.push(more);
                }
                let mut refresh = false;
                let mut lines = Vec::new();
                for event in &batch {
                    match event {
                        ClientEvent::MessagesChanged { room_id: changed, .. } => refresh |= *changed == view.room_id,
                        other => lines.extend(view.apply(other)),
                    }
                }
                if refresh {
                    let recent = client.messages(room_id.clone(), REFRESH_LIMIT, None)?;
                    lines.splice(0..0, view.update(&recent));
                }
                print_lines(&lines);
            },
            _ = tokio::time::sleep_until(deadline), if drain_deadline.is_some() => {
                println!("-- leaving with {} message(s) still queued; they are sent on the next sync --", view.pending);
                break;
            },
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    subscription.cancel();
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatsync_core::ChatUser;

    fn message(id: &str, local: Option<&str>, state: MessageState, text: &str) -> ChatMessage {
        ChatMessage {
            id: id.into(),
            server_id: id.parse().ok(),
            local_id: local.map(Into::into),
            room_id: "r1".into(),
            text: text.into(),
            created_at: "2026-11-25T06:07:08.000Z".into(),
            user: ChatUser {
                id: "bob".into(),
                name: "bob".into(),
                avatar: None,
            },
            state,
            pending: state == MessageState::Pending,
            sent: state == MessageState::Sent,
            failed: state == MessageState::Failed,
            failure_reason: None,
            parts: vec![],
        }
    }

    #[test]
    fn new_messages_print_once_oldest_first() {
        let mut view = ChatView::new("r1".into());
        let page = vec![
            message("2", None, MessageState::Sent, "second"),
            message("1", None, MessageState::Sent, "first"),
        ];
        assert_eq!(
            view.update(&page),
            vec!["[06:07] bob: first", "[06:07] bob: second"]
        );
        assert!(view.update(&page).is_empty());
    }

    #[test]
    fn an_echo_that_gets_sent_prints_a_delivery_line_not_a_duplicate() {
        let mut view = ChatView::new("r1".into());
        assert_eq!(
            view.update(&[message("txn", Some("txn"), MessageState::Pending, "hi")]),
            vec!["[06:07] bob: hi (pending)"]
        );
        assert_eq!(
            view.update(&[message("9", Some("txn"), MessageState::Sent, "hi")]),
            vec!["  ✓ sent: hi"]
        );
    }

    #[test]
    fn the_status_line_prints_only_on_change() {
        let mut view = ChatView::new("r1".into());
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
