//! The device a command runs on: a [`ChatClient`] opened from the global flags, the way an app
//! opens it at launch, and the room a `--room` / `--to` flag names. Nothing here syncs or stores
//! by itself: every read and write goes through the core.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chatsync_core::{ChatClient, ChatError, ClientConfig, RoomSummary, TokenSource};

use crate::args::{GlobalArgs, RoomTarget};
use crate::exit::{CliError, Exit};

/// The user id a command acts as; `--user` (or `CHATSYNC_USER`) is required by device commands.
pub fn user_id(global: &GlobalArgs) -> Result<String, CliError> {
    let user = global
        .user
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .ok_or_else(|| CliError::usage("no user: pass --user ID or set CHATSYNC_USER"))?;
    Ok(user.to_owned())
}

/// The data directory: `--data`, else `<platform data dir>/chatsync/<user>`.
pub fn data_dir(global: &GlobalArgs, user_id: &str) -> Result<PathBuf, CliError> {
    if let Some(dir) = &global.data {
        return Ok(dir.clone());
    }
    // The user id becomes a path component: refuse anything that could leave the parent folder.
    if user_id.contains(['/', '\\']) || user_id == "." || user_id == ".." || user_id.contains('\0')
    {
        return Err(CliError::usage(format!(
            "user id {user_id:?} cannot name a folder; pass --data DIR"
        )));
    }
    let base = dirs::data_dir()
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/share")))
        .ok_or_else(|| CliError::usage("no platform data directory found; pass --data DIR"))?;
    Ok(base.join("chatsync").join(user_id))
}

/// Checks what can be checked before the core opens the store, so the error says which path
/// is wrong. The core still reports corruption and newer formats itself.
fn check_data_dir(dir: &Path) -> Result<(), CliError> {
    match std::fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => Err(CliError {
            exit: Exit::Storage,
            message: format!("data directory {} is not a directory", dir.display()),
        }),
        Ok(_) => std::fs::read_dir(dir).map(|_| ()).map_err(|e| CliError {
            exit: Exit::Storage,
            message: format!("data directory {} is unreadable: {e}", dir.display()),
        }),
        // Missing: the core creates it.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(CliError {
            exit: Exit::Storage,
            message: format!("data directory {} is unreadable: {e}", dir.display()),
        }),
    }
}

/// Opens the user's device store (no network I/O) and makes sure a session exists: the first
/// command on a fresh store logs in with `--name` (or the user id) as the display name. The
/// login is stored at once and uploaded by the core when the server is reachable.
pub fn open(global: &GlobalArgs) -> Result<Arc<ChatClient>, CliError> {
    let config = client_config(global)?;
    let dir = config.data_dir.clone();
    let client = ChatClient::new(config).map_err(|e| match e {
        ChatError::Busy(_) => CliError {
            exit: Exit::Busy,
            message: format!(
                "the store in {} is in use by another chatsync process (a running `chatsync chat`?); try again when it exits",
                dir.display()
            ),
        },
        e => CliError::from(e).context(format!("cannot open the store in {}", dir.display())),
    })?;
    Ok(client)
}

/// The core's configuration from the global flags, the data directory checked.
pub fn client_config(global: &GlobalArgs) -> Result<ClientConfig, CliError> {
    let user = user_id(global)?;
    let dir = data_dir(global, &user)?;
    check_data_dir(&dir)?;
    let token = match &global.token {
        Some(token) => TokenSource::Fixed(token.clone()),
        None => TokenSource::DevTokenRoute,
    };
    let mut config = ClientConfig::new(global.server.trim_end_matches('/'), &dir, &user, token);
    config.allow_insecure_http = global.allow_insecure_http;
    Ok(config)
}

/// Logs in on first use (see [`open`]). Separate from `open` because it is async and the
/// client must be created outside any runtime context (it owns one).
pub async fn ensure_session(client: &ChatClient, global: &GlobalArgs) -> Result<(), CliError> {
    if client.session()?.is_some() {
        return Ok(());
    }
    let user = user_id(global)?;
    let name = global.name.clone().unwrap_or(user);
    match client.login(name, None).await {
        Ok(_) => Ok(()),
        // Stored locally even when the upload could not happen; the core uploads it later.
        Err(ChatError::Offline(_)) if client.session()?.is_some() => Ok(()),
        Err(e) => Err(CliError::from(e).context("cannot log in")),
    }
}

/// Whether `room` is the direct room of `me` and `other`.
pub fn is_direct_room(room: &RoomSummary, me: &str, other: &str) -> bool {
    let mut members: Vec<&str> = room.member_ids.iter().map(String::as_str).collect();
    members.sort_unstable();
    members.dedup();
    let mut wanted = vec![me, other];
    wanted.sort_unstable();
    wanted.dedup();
    members == wanted
}

/// The room id a `--room` / `--to` flag names. A direct room already on the device is found
/// offline; otherwise the core gets or creates it on the server (and stores it).
pub async fn resolve_room(
    client: &ChatClient,
    me: &str,
    target: &RoomTarget,
) -> Result<String, CliError> {
    if let Some(room) = &target.room {
        return Ok(room.clone());
    }
    let other = target
        .with
        .as_deref()
        .ok_or_else(|| CliError::usage("pass --room ID or --to USER"))?;
    direct_room(client, me, other).await
}

/// The id of the direct room with `other`, from the store or else from the server.
pub async fn direct_room(client: &ChatClient, me: &str, other: &str) -> Result<String, CliError> {
    if let Some(room) = client
        .rooms()?
        .into_iter()
        .find(|r| is_direct_room(r, me, other))
    {
        return Ok(room.id);
    }
    match client.open_direct_room(other.to_owned()).await {
        Ok(room) => Ok(room.id),
        Err(e @ ChatError::Offline(_)) => Err(CliError::from(e).context(format!(
            "no room with {other} on this device yet, and the server is unreachable"
        ))),
        Err(e) => Err(CliError::from(e).context(format!("cannot open the room with {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn global(args: &[&str]) -> GlobalArgs {
        let mut argv = vec!["chatsync"];
        argv.extend_from_slice(args);
        argv.push("rooms");
        crate::args::Cli::try_parse_from(argv).unwrap().global
    }

    fn room(members: &[&str]) -> RoomSummary {
        RoomSummary {
            id: "r".into(),
            name: None,
            member_ids: members.iter().map(|m| m.to_string()).collect(),
            last_message: None,
            unread: 0,
        }
    }

    #[test]
    fn direct_rooms_match_whatever_the_member_order() {
        assert!(is_direct_room(&room(&["bob", "alice"]), "alice", "bob"));
        assert!(is_direct_room(&room(&["alice", "bob"]), "alice", "bob"));
        assert!(!is_direct_room(
            &room(&["alice", "bob", "carol"]),
            "alice",
            "bob"
        ));
        assert!(!is_direct_room(&room(&["alice"]), "alice", "bob"));
    }

    #[test]
    fn the_default_data_dir_is_per_user() {
        let g = global(&["--user", "alice"]);
        let dir = data_dir(&g, "alice").unwrap();
        assert!(dir.ends_with("chatsync/alice"), "{}", dir.display());
    }

    #[test]
    fn a_user_id_that_is_a_path_needs_an_explicit_data_dir() {
        let g = global(&["--user", "../x"]);
        assert_eq!(data_dir(&g, "../x").unwrap_err().exit, Exit::Usage);
        let g = global(&["--user", "../x", "--data", "/tmp/somewhere"]);
        assert_eq!(
            data_dir(&g, "../x").unwrap(),
            PathBuf::from("/tmp/somewhere")
        );
    }

    #[test]
    fn a_file_is_not_a_data_dir() {
        let file = tempfile::NamedTempFile::new().unwrap();
        assert_eq!(check_data_dir(file.path()).unwrap_err().exit, Exit::Storage);
        let dir = tempfile::tempdir().unwrap();
        check_data_dir(dir.path()).unwrap();
        check_data_dir(&dir.path().join("missing")).unwrap();
    }

    #[test]
    fn a_missing_user_is_a_usage_error() {
        let g = global(&[]);
        // CHATSYNC_USER may be set in the environment running the tests; only check the empty case.
        if std::env::var_os("CHATSYNC_USER").is_none() {
            assert_eq!(user_id(&g).unwrap_err().exit, Exit::Usage);
        }
    }
}
