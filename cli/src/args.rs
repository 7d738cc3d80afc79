//! The command line, as clap types. Kept apart from the commands so `--help` (the CLI's manual)
//! can be read in one place, and so parsing is unit-tested without a store or a server.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// The server a fresh clone's `chatsync serve` listens on.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:5000";

/// chatsync: the offline-first chat core in a terminal.
///
/// Every command works on one user's device store (`--data`), exactly as an app would: reads come
/// from the store, sends are queued durably and delivered when the server is reachable.
#[derive(Debug, Parser)]
#[command(name = "chatsync", version, about, after_help = EXIT_CODES_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// The exit codes, printed under `--help` (also documented in cli/README.md).
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  ok
  1  unexpected internal error
  2  usage: bad flags or invalid input
  3  offline: the server could not be reached, or answered with an error or busy (sends are still queued)
  4  unauthorized, or rejected by the server (a send that ended failed)
  5  storage: the data directory is unreadable, corrupt or of a newer format
  6  busy: another process holds the data directory
  7  protocol: the server answered something that is not chatsync protocol v1
  8  not found: unknown room, user or outbox entry
  9  doctor: the store was damaged and rebuilt, but some of it could not be read (listed)";

/// Flags every device command shares.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Base URL of the chatsync server.
    #[arg(long, global = true, env = "CHATSYNC_SERVER", default_value = DEFAULT_SERVER)]
    pub server: String,
    /// The user this device belongs to.
    #[arg(long, global = true, env = "CHATSYNC_USER")]
    pub user: Option<String>,
    /// Display name stored with the user's profile on first use (defaults to the user id).
    #[arg(long, global = true, env = "CHATSYNC_NAME")]
    pub name: Option<String>,
    /// The device store [default: <platform data dir>/chatsync/<user>].
    #[arg(long, global = true, env = "CHATSYNC_DATA", value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Bearer token; without it one is fetched from the server's dev token route.
    #[arg(long, global = true, env = "CHATSYNC_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Allow plain http:// to a host other than loopback.
    #[arg(long, global = true)]
    pub allow_insecure_http: bool,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the reference server (same flags as chatsync-server).
    Serve(chatsync_server::ServeArgs),
    /// Queue a message and try to deliver it; prints the message as JSON.
    Send(SendArgs),
    /// One sync plus an outbox flush; prints a JSON report.
    Sync,
    /// Messages of a room from the store, newest first.
    Messages(MessagesArgs),
    /// Rooms held on this device.
    Rooms(JsonFlag),
    /// Messages waiting to be delivered (pending) or rejected (failed).
    Outbox(JsonFlag),
    /// Queue a failed message again.
    Retry(OutboxIdArgs),
    /// Drop a pending or failed message from the outbox.
    Discard(OutboxIdArgs),
    /// Interactive chat with one user; works offline and catches up when back online.
    Chat(ChatArgs),
    /// Check the store; when it is damaged, keep it aside and rebuild it with every queued
    /// message that can be read (under its original txn id) and the login.
    Doctor(JsonFlag),
    /// Edit one of your messages (ID: its id from `messages`); queued like a send.
    Edit(EditArgs),
    /// Delete one of your messages (it stays as a tombstone); queued like a send.
    Delete(MessageIdArgs),
    /// Toggle your reaction KEY (an emoji) on a message: again removes it.
    React(ReactArgs),
    /// Mark a room read up to its newest message.
    Read(RoomOnly),
    /// Tell a room you are typing (it lapses by itself after a few seconds).
    Typing(TypingArgs),
}

/// A message by its id (as `chatsync messages` shows it).
#[derive(Debug, Args)]
pub struct MessageIdArgs {
    /// The message's id: its server id, or its local id while it is queued.
    pub id: String,
}

/// `chatsync edit`.
#[derive(Debug, Args)]
pub struct EditArgs {
    /// The message's id: its server id, or its local id while it is queued.
    pub id: String,
    /// The new text.
    pub text: String,
}

/// `chatsync react`.
#[derive(Debug, Args)]
pub struct ReactArgs {
    /// The message's id.
    pub id: String,
    /// The reaction (an emoji or a short code, at most 32 bytes).
    pub key: String,
}

/// A command about one room.
#[derive(Debug, Args)]
pub struct RoomOnly {
    #[command(flatten)]
    pub target: RoomTarget,
}

/// `chatsync typing`.
#[derive(Debug, Args)]
pub struct TypingArgs {
    #[command(flatten)]
    pub target: RoomTarget,
    /// Say you stopped typing instead.
    #[arg(long)]
    pub stop: bool,
}

/// Which room a command is about: a room id or the direct room with a user.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct RoomTarget {
    /// A room id.
    #[arg(long)]
    pub room: Option<String>,
    /// The direct room with this user.
    #[arg(long = "to", visible_alias = "with")]
    pub with: Option<String>,
}

/// `chatsync send`.
#[derive(Debug, Args)]
pub struct SendArgs {
    #[command(flatten)]
    pub target: RoomTarget,
    /// The message text.
    pub text: String,
}

/// `chatsync messages`.
#[derive(Debug, Args)]
pub struct MessagesArgs {
    #[command(flatten)]
    pub target: RoomTarget,
    /// How many messages at most.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: u32,
    /// Only messages older than this server id.
    #[arg(long)]
    pub before: Option<u64>,
    /// Print JSON (the core's shapes, as the apps get them) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// A `--json` switch for listing commands.
#[derive(Debug, Args)]
pub struct JsonFlag {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `chatsync retry` / `chatsync discard`.
#[derive(Debug, Args)]
pub struct OutboxIdArgs {
    /// The local id of the outbox entry (see `chatsync outbox`).
    pub local_id: String,
}

/// `chatsync chat`.
#[derive(Debug, Args)]
pub struct ChatArgs {
    /// The user to chat with.
    #[arg(long)]
    pub with: String,
    /// How many messages of history to show on start.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub history: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn send_needs_exactly_one_target() {
        assert!(Cli::try_parse_from(["chatsync", "send", "hi"]).is_err());
        assert!(
            Cli::try_parse_from(["chatsync", "send", "--room", "r", "--to", "bob", "hi"]).is_err()
        );
        let cli = Cli::try_parse_from(["chatsync", "--user", "alice", "send", "--to", "bob", "hi"])
            .unwrap();
        match cli.command {
            Command::Send(a) => {
                assert_eq!(a.target.with.as_deref(), Some("bob"));
                assert_eq!(a.text, "hi");
            }
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn global_flags_may_follow_the_subcommand() {
        let cli = Cli::try_parse_from([
            "chatsync",
            "sync",
            "--user",
            "bob",
            "--server",
            "http://127.0.0.1:9",
        ])
        .unwrap();
        assert_eq!(cli.global.user.as_deref(), Some("bob"));
        assert_eq!(cli.global.server, "http://127.0.0.1:9");
    }

    #[test]
    fn messages_with_is_an_alias_of_to() {
        let cli = Cli::try_parse_from([
            "chatsync", "messages", "--with", "bob", "--limit", "5", "--json",
        ])
        .unwrap();
        match cli.command {
            Command::Messages(a) => {
                assert_eq!(a.target.with.as_deref(), Some("bob"));
                assert_eq!(a.limit, 5);
                assert!(a.json);
            }
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn a_zero_limit_is_a_usage_error() {
        assert!(
            Cli::try_parse_from(["chatsync", "messages", "--room", "r", "--limit", "0"]).is_err()
        );
    }
}
