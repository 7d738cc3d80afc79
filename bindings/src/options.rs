//! What `configure()` and `login()` pass from JS, validated once, and how it is kept between
//! launches so the OS's background task can open the store with no JS running.
//!
//! JS sends JSON (the TypeScript types `ConfigureOptions` and `LoginUser` in
//! src/generated/native.ts are rendered from [`ConfigureOptions`] and [`LoginUser`]). Validation
//! names the field that is wrong. The settings file (`settings.json` in the host's folder) holds
//! the options and the logged-in user's id; the tokens (a fixed `auth.token`, a token given at
//! login) go to the [`SecretStore`] and never into the file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::{ClientConfig, ProbeConfig, ProbeMethod, TokenSource};
use crate::secrets::{self, SecretStore, SecretStoreError};

/// Secret-store key of a fixed token given in `configure({auth: {kind: 'fixed', token}})`.
pub(crate) const AUTH_TOKEN_KEY: &str = "chatsync.auth-token";
/// Secret-store key of a token given at `login({token})`.
pub(crate) const LOGIN_TOKEN_KEY: &str = "chatsync.login-token";

/// Options JS got wrong: the message names the field (`pageSize must be a positive whole
/// number, got 2.5`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidOptions(pub String);

/// How the client gets its bearer token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub enum AuthOptions {
    /// The reference server's dev-mode route `POST /v1/token` (quick start, local servers).
    DevTokenRoute,
    /// A token the app obtained itself; it cannot be refreshed, so a 401 is final. Kept in the
    /// secret store, not in the settings file.
    Fixed {
        /// The bearer token (empty in the settings file: the secret store holds it).
        token: String,
    },
}

/// Connectivity probe settings (react-native-offline's meanings); absent fields keep the core's
/// defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ProbeOptions {
    /// URL to probe; the server's `/health` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub url: Option<String>,
    /// `HEAD` (default) or `GET`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional, type = "'HEAD' | 'GET'"))]
    pub method: Option<String>,
    /// Probe timeout in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional, type = "number"))]
    pub timeout_ms: Option<u64>,
    /// Interval between probes while offline, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional, type = "number"))]
    pub interval_ms: Option<u64>,
    /// Probe only while offline (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub only_while_offline: Option<bool>,
    /// Keep probing in the background (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub in_background: Option<bool>,
}

/// Options of `configure()`. Only `serverUrl` is required; the rest have the core's mobile
/// defaults.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ConfigureOptions {
    /// Base URL of the chat server, `https://...` (or `http://` to loopback).
    pub server_url: String,
    /// Default `{ kind: 'devTokenRoute' }`. A `token` given to `login()` wins over it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub auth: Option<AuthOptions>,
    /// Messages per page (timeline pagination, sync limit per room). Default: the core's (50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub page_size: Option<u32>,
    /// Local history kept per room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub max_messages_per_room: Option<u32>,
    /// sled page cache in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional, type = "number"))]
    pub cache_capacity_bytes: Option<u64>,
    /// Allow plain `http://` to a non-loopback host. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub allow_insecure_http: Option<bool>,
    /// Connectivity probe settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub probe: Option<ProbeOptions>,
    /// Interval of sync + flush while the app is in the background and online, in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional, type = "number"))]
    pub background_interval_ms: Option<u64>,
    /// Post local notifications for messages found by the background task. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub notifications: Option<bool>,
}

/// The user of `login()`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct LoginUser {
    /// The user id; also names the on-device store.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Avatar URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub avatar: Option<String>,
    /// A bearer token for this user; when absent, `ConfigureOptions.auth` applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub token: Option<String>,
}

impl ConfigureOptions {
    /// Parses and validates `configure()`'s JSON.
    pub fn from_json(json: &str) -> Result<Self, InvalidOptions> {
        let value: Value = serde_json::from_str(json)
            .map_err(|e| InvalidOptions(format!("options are not JSON: {e}")))?;
        let map = object(&value, "options")?;
        known_fields(
            map,
            "",
            &[
                "serverUrl",
                "auth",
                "pageSize",
                "maxMessagesPerRoom",
                "cacheCapacityBytes",
                "allowInsecureHttp",
                "probe",
                "backgroundIntervalMs",
                "notifications",
            ],
        )?;
        let server_url = string(map, "", "serverUrl")?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| InvalidOptions("serverUrl must be a non-empty string".into()))?;
        if !server_url.starts_with("https://") && !server_url.starts_with("http://") {
            return Err(InvalidOptions(format!(
                "serverUrl must start with https:// or http://, got '{server_url}'"
            )));
        }
        let auth = match map.get("auth") {
            None | Some(Value::Null) => None,
            Some(v) => {
                let a = object(v, "auth")?;
                known_fields(a, "auth.", &["kind", "token"])?;
                match string(a, "auth.", "kind")?.as_deref() {
                    None | Some("devTokenRoute") => Some(AuthOptions::DevTokenRoute),
                    Some("fixed") => Some(AuthOptions::Fixed {
                        token: string(a, "auth.", "token")?
                            .filter(|t| !t.is_empty())
                            .ok_or_else(|| {
                                InvalidOptions("auth.token must be a non-empty string".into())
                            })?,
                    }),
                    Some(other) => {
                        return Err(InvalidOptions(format!(
                            "auth.kind must be 'devTokenRoute' or 'fixed', got '{other}'"
                        )))
                    }
                }
            }
        };
        let probe = match map.get("probe") {
            None | Some(Value::Null) => None,
            Some(v) => {
                let p = object(v, "probe")?;
                let fields = [
                    "url",
                    "method",
                    "timeoutMs",
                    "intervalMs",
                    "onlyWhileOffline",
                    "inBackground",
                ];
                known_fields(p, "probe.", &fields)?;
                let method = string(p, "probe.", "method")?;
                if let Some(m) = &method {
                    if m != "HEAD" && m != "GET" {
                        return Err(InvalidOptions(format!(
                            "probe.method must be 'HEAD' or 'GET', got '{m}'"
                        )));
                    }
                }
                Some(ProbeOptions {
                    url: string(p, "probe.", "url")?,
                    method,
                    timeout_ms: positive(p, "probe.", "timeoutMs", u64::MAX)?,
                    interval_ms: positive(p, "probe.", "intervalMs", u64::MAX)?,
                    only_while_offline: boolean(p, "probe.", "onlyWhileOffline")?,
                    in_background: boolean(p, "probe.", "inBackground")?,
                })
            }
        };
        let u32_max = u64::from(u32::MAX);
        Ok(ConfigureOptions {
            server_url,
            auth,
            page_size: positive(map, "", "pageSize", u32_max)?.map(|v| v as u32),
            max_messages_per_room: positive(map, "", "maxMessagesPerRoom", u32_max)?
                .map(|v| v as u32),
            cache_capacity_bytes: positive(map, "", "cacheCapacityBytes", u64::MAX)?,
            allow_insecure_http: boolean(map, "", "allowInsecureHttp")?,
            probe,
            background_interval_ms: positive(map, "", "backgroundIntervalMs", u64::MAX)?,
            notifications: boolean(map, "", "notifications")?,
        })
    }

    /// Whether background-task notifications are on (default true).
    pub fn notifications_enabled(&self) -> bool {
        self.notifications.unwrap_or(true)
    }

    /// The core's page size for these options (the option, else the core's default).
    pub fn effective_page_size(&self) -> u32 {
        self.page_size.unwrap_or_else(default_page_size)
    }

    /// The client config for `user_id` storing in `data_dir`. The token: `login_token` (given
    /// at login) first, then a fixed `auth` token, else the dev-token route.
    pub fn client_config(
        &self,
        user_id: &str,
        data_dir: &Path,
        login_token: Option<String>,
    ) -> ClientConfig {
        let token = match (login_token, &self.auth) {
            (Some(token), _) => TokenSource::Fixed { token },
            (None, Some(AuthOptions::Fixed { token })) => TokenSource::Fixed {
                token: token.clone(),
            },
            (None, _) => TokenSource::DevTokenRoute,
        };
        ClientConfig {
            server_url: self.server_url.clone(),
            data_dir: data_dir.to_string_lossy().into_owned(),
            user_id: user_id.to_owned(),
            token,
            cache_capacity_bytes: self.cache_capacity_bytes,
            page_size: self.page_size,
            max_messages_per_room: self.max_messages_per_room,
            probe: self.probe.as_ref().map(|p| ProbeConfig {
                url: p.url.clone(),
                method: p.method.as_deref().map(|m| match m {
                    "GET" => ProbeMethod::Get,
                    _ => ProbeMethod::Head,
                }),
                timeout_ms: p.timeout_ms,
                interval_ms: p.interval_ms,
                only_while_offline: p.only_while_offline,
                in_background: p.in_background,
            }),
            background_interval_ms: self.background_interval_ms,
            long_poll_timeout_ms: None,
            allow_insecure_http: self.allow_insecure_http,
        }
    }
}

impl LoginUser {
    /// Parses and validates `login()`'s JSON.
    pub fn from_json(json: &str) -> Result<Self, InvalidOptions> {
        let value: Value = serde_json::from_str(json)
            .map_err(|e| InvalidOptions(format!("user is not JSON: {e}")))?;
        let map = object(&value, "user")?;
        known_fields(map, "user.", &["id", "name", "avatar", "token"])?;
        let required = |field: &str| {
            string(map, "user.", field)?
                .filter(|s| !s.is_empty())
                .ok_or_else(|| InvalidOptions(format!("user.{field} must be a non-empty string")))
        };
        let optional = |field: &str| Ok(string(map, "user.", field)?.filter(|s| !s.is_empty()));
        Ok(LoginUser {
            id: required("id")?,
            name: required("name")?,
            avatar: optional("avatar")?,
            token: optional("token")?,
        })
    }
}

/// The core's default page size (one place: `chatsync_core::ClientConfig::new`).
pub fn default_page_size() -> u32 {
    chatsync_core::ClientConfig::new("", "", "", chatsync_core::TokenSource::DevTokenRoute)
        .page_size
}

/// What the settings file holds (no secrets).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SettingsFile {
    /// Format of this file; a newer one is not read (an app downgrade).
    version: u32,
    /// The last `configure()` options, the fixed token removed.
    options: Option<ConfigureOptions>,
    /// The logged-in user.
    user_id: Option<String>,
}

const SETTINGS_VERSION: u32 = 1;

/// The logged-in user as kept between launches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredUser {
    /// The user id.
    pub id: String,
    /// A token given at login, from the secret store.
    pub token: Option<String>,
}

impl StoredUser {
    /// The store's folder name: the id's UTF-8 bytes in hex, so no id (`..`, `a/b`) can escape
    /// the chatsync folder or clash with another.
    pub fn directory_name(&self) -> String {
        self.id.bytes().map(|b| format!("{b:02x}")).collect()
    }
}

/// Why the settings could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The file could not be read or written.
    #[error("settings: {0}")]
    Io(#[from] std::io::Error),
    /// The secret store failed.
    #[error("settings: {0}")]
    Secrets(#[from] SecretStoreError),
}

/// The host's persistent settings: `settings.json` in `dir`, tokens in the secret store.
pub struct Settings {
    dir: PathBuf,
    secrets: Arc<dyn SecretStore>,
}

impl Settings {
    /// Settings kept in `dir` (created on first write), tokens in `secrets`.
    pub fn new(dir: PathBuf, secrets: Arc<dyn SecretStore>) -> Self {
        Settings { dir, secrets }
    }

    fn path(&self) -> PathBuf {
        self.dir.join("settings.json")
    }

    /// The file's content; a missing, unreadable or newer-format file reads as empty (the
    /// app then asks for `configure()` again, which is what a fresh install does).
    fn read(&self) -> SettingsFile {
        std::fs::read(self.path())
            .ok()
            .and_then(|bytes| serde_json::from_slice::<SettingsFile>(&bytes).ok())
            .filter(|f| f.version <= SETTINGS_VERSION)
            .unwrap_or_default()
    }

    /// Writes the file atomically (a temporary file renamed over it): a kill mid-write leaves
    /// the old settings or the new ones, never half.
    fn write(&self, file: &SettingsFile) -> Result<(), SettingsError> {
        std::fs::create_dir_all(&self.dir)?;
        let tmp = self.dir.join("settings.json.tmp");
        let bytes = serde_json::to_vec_pretty(file).map_err(std::io::Error::other)?;
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, self.path())?;
        Ok(())
    }

    /// The stored options with their token, or `None` before the first `configure()` (or when
    /// a fixed token is stored without its secret).
    pub fn options(&self) -> Result<Option<ConfigureOptions>, SettingsError> {
        let Some(mut options) = self.read().options else {
            return Ok(None);
        };
        if let Some(AuthOptions::Fixed { token }) = &mut options.auth {
            match self.secrets.get(AUTH_TOKEN_KEY.into())? {
                Some(secret) => *token = secret,
                None => return Ok(None),
            }
        }
        Ok(Some(options))
    }

    /// Replaces the stored options: the fixed token to the secret store, the rest to the file.
    pub fn save_options(&self, options: &ConfigureOptions) -> Result<(), SettingsError> {
        let mut public = options.clone();
        let secret = match &mut public.auth {
            Some(AuthOptions::Fixed { token }) => Some(std::mem::take(token)),
            _ => None,
        };
        secrets::put(&self.secrets, AUTH_TOKEN_KEY, secret.as_deref())?;
        let mut file = self.read();
        file.version = SETTINGS_VERSION;
        file.options = Some(public);
        self.write(&file)
    }

    /// The logged-in user, or `None`.
    pub fn user(&self) -> Result<Option<StoredUser>, SettingsError> {
        let Some(id) = self.read().user_id else {
            return Ok(None);
        };
        let token = self.secrets.get(LOGIN_TOKEN_KEY.into())?;
        Ok(Some(StoredUser { id, token }))
    }

    /// Remembers the logged-in user (its token in the secret store).
    pub fn save_user(&self, user: &StoredUser) -> Result<(), SettingsError> {
        secrets::put(&self.secrets, LOGIN_TOKEN_KEY, user.token.as_deref())?;
        let mut file = self.read();
        file.version = SETTINGS_VERSION;
        file.user_id = Some(user.id.clone());
        self.write(&file)
    }

    /// Forgets the logged-in user and their token (logout). Their store stays on disk.
    pub fn clear_user(&self) -> Result<(), SettingsError> {
        self.secrets.remove(LOGIN_TOKEN_KEY.into())?;
        let mut file = self.read();
        file.version = SETTINGS_VERSION;
        file.user_id = None;
        self.write(&file)
    }
}

fn object<'a>(value: &'a Value, what: &str) -> Result<&'a Map<String, Value>, InvalidOptions> {
    value
        .as_object()
        .ok_or_else(|| InvalidOptions(format!("{what} must be an object")))
}

/// Refuses fields the host does not know: a typo (`pagesize`) must not pass silently.
fn known_fields(
    map: &Map<String, Value>,
    prefix: &str,
    known: &[&str],
) -> Result<(), InvalidOptions> {
    match map.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(InvalidOptions(format!(
            "{prefix}{k} is not an option (known: {})",
            known.join(", ")
        ))),
        None => Ok(()),
    }
}

fn string(
    map: &Map<String, Value>,
    prefix: &str,
    key: &str,
) -> Result<Option<String>, InvalidOptions> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(InvalidOptions(format!("{prefix}{key} must be a string"))),
    }
}

fn boolean(
    map: &Map<String, Value>,
    prefix: &str,
    key: &str,
) -> Result<Option<bool>, InvalidOptions> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(InvalidOptions(format!("{prefix}{key} must be a boolean"))),
    }
}

/// A whole number in `1..=max` (JS numbers: `2.5`, `-1`, `0` and `1e300` are refused).
fn positive(
    map: &Map<String, Value>,
    prefix: &str,
    key: &str,
    max: u64,
) -> Result<Option<u64>, InvalidOptions> {
    let value = match map.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(v) => v,
    };
    let Value::Number(n) = value else {
        return Err(InvalidOptions(format!("{prefix}{key} must be a number")));
    };
    let whole = n.as_u64().or_else(|| {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= 1.0 && *f <= max as f64)
            .map(|f| f as u64)
    });
    match whole {
        Some(v) if v >= 1 && v <= max => Ok(Some(v)),
        _ => Err(InvalidOptions(format!(
            "{prefix}{key} must be a whole number from 1 to {max}, got {n}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::MemorySecretStore;

    fn parse(json: &str) -> Result<ConfigureOptions, String> {
        ConfigureOptions::from_json(json).map_err(|e| e.0)
    }

    #[test]
    fn a_full_options_object_parses() {
        let o = parse(
            r#"{"serverUrl":"https://chat.example.com","auth":{"kind":"fixed","token":"t0k"},
                "pageSize":30,"cacheCapacityBytes":2097152,"allowInsecureHttp":false,
                "probe":{"method":"GET","timeoutMs":2500.0,"url":"https://chat.example.com/up"},
                "backgroundIntervalMs":120000,"notifications":false}"#,
        )
        .unwrap();
        assert_eq!(
            o.auth,
            Some(AuthOptions::Fixed {
                token: "t0k".into()
            })
        );
        assert_eq!(o.page_size, Some(30));
        assert_eq!(o.probe.as_ref().unwrap().timeout_ms, Some(2500));
        assert!(!o.notifications_enabled());
        let c = o.client_config("bob", Path::new("/d"), None);
        assert_eq!(c.probe.unwrap().method, Some(ProbeMethod::Get));
        assert!(matches!(c.token, TokenSource::Fixed { token } if token == "t0k"));
    }

    #[test]
    fn only_server_url_is_required_and_the_rest_keeps_the_core_defaults() {
        let o = parse(r#"{"serverUrl":"http://127.0.0.1:5000"}"#).unwrap();
        assert_eq!(o.effective_page_size(), 50);
        assert!(o.notifications_enabled());
        let c = o.client_config("alice", Path::new("/d"), None);
        assert!(matches!(c.token, TokenSource::DevTokenRoute));
        assert_eq!((c.page_size, c.probe.is_none()), (None, true));
        let from_login = o.client_config("alice", Path::new("/d"), Some("l".into()));
        assert!(matches!(from_login.token, TokenSource::Fixed { token } if token == "l"));
    }

    #[test]
    fn bad_options_are_refused_naming_the_field() {
        let cases = [
            ("{}", "serverUrl must be a non-empty string"),
            (
                r#"{"serverUrl":"ftp://x"}"#,
                "serverUrl must start with https://",
            ),
            (r#"{"serverUrl":42}"#, "serverUrl must be a string"),
            (
                r#"{"serverUrl":"https://x","pageSize":2.5}"#,
                "pageSize must be a whole number",
            ),
            (
                r#"{"serverUrl":"https://x","pageSize":-1}"#,
                "pageSize must be a whole number",
            ),
            (
                r#"{"serverUrl":"https://x","pageSize":0}"#,
                "pageSize must be a whole number",
            ),
            (
                r#"{"serverUrl":"https://x","pageSize":5000000000}"#,
                "pageSize must be a whole number",
            ),
            (
                r#"{"serverUrl":"https://x","pageSize":"50"}"#,
                "pageSize must be a number",
            ),
            (
                r#"{"serverUrl":"https://x","auth":{"kind":"fixed"}}"#,
                "auth.token must be",
            ),
            (
                r#"{"serverUrl":"https://x","auth":{"kind":"oauth"}}"#,
                "auth.kind must be",
            ),
            (
                r#"{"serverUrl":"https://x","probe":{"method":"POST"}}"#,
                "probe.method must be",
            ),
            (
                r#"{"serverUrl":"https://x","probe":{"timeoutMs":true}}"#,
                "probe.timeoutMs must be a number",
            ),
            (
                r#"{"serverUrl":"https://x","pagesize":5}"#,
                "pagesize is not an option",
            ),
            (
                r#"{"serverUrl":"https://x","notifications":"yes"}"#,
                "notifications must be a boolean",
            ),
            ("[]", "options must be an object"),
            ("{", "options are not JSON"),
        ];
        for (json, expected) in cases {
            let error = parse(json).unwrap_err();
            assert!(error.contains(expected), "{json}: {error}");
        }
    }

    #[test]
    fn a_login_user_is_validated() {
        let u = LoginUser::from_json(r#"{"id":"alice","name":"Alice","avatar":"","token":"t"}"#)
            .unwrap();
        assert_eq!(u.avatar, None, "an empty avatar is none");
        assert_eq!(u.token.as_deref(), Some("t"));
        for (json, expected) in [
            (
                r#"{"id":"","name":"A"}"#,
                "user.id must be a non-empty string",
            ),
            (r#"{"id":"a"}"#, "user.name must be a non-empty string"),
            (
                r#"{"id":"a","name":"A","nick":"x"}"#,
                "user.nick is not an option",
            ),
        ] {
            let error = LoginUser::from_json(json).unwrap_err().0;
            assert!(error.contains(expected), "{json}: {error}");
        }
    }

    #[test]
    fn store_folder_names_cannot_escape_or_clash() {
        let dir = |id: &str| {
            StoredUser {
                id: id.into(),
                token: None,
            }
            .directory_name()
        };
        assert_eq!(dir("alice"), "616c696365");
        assert_eq!(dir(".."), "2e2e");
        assert!(!dir("a/b").contains('/'));
        assert_ne!(dir("Alice"), dir("alice"));
    }

    fn settings() -> (tempfile::TempDir, Settings, Arc<MemorySecretStore>) {
        let dir = tempfile::tempdir().unwrap();
        let secrets = Arc::new(MemorySecretStore::default());
        let settings = Settings::new(dir.path().join("chatsync"), secrets.clone());
        (dir, settings, secrets)
    }

    #[test]
    fn options_read_back_the_same_and_tokens_stay_out_of_the_file() {
        let (_dir, settings, secrets) = settings();
        assert_eq!(settings.options().unwrap(), None, "nothing stored yet");
        let full = parse(
            r#"{"serverUrl":"https://chat.example.com","auth":{"kind":"fixed","token":"s3cret"},
                "pageSize":20,"maxMessagesPerRoom":5000,"cacheCapacityBytes":4194304,
                "allowInsecureHttp":true,"backgroundIntervalMs":90000,"notifications":false,
                "probe":{"url":"https://x/h","method":"HEAD","timeoutMs":100,"intervalMs":2000,
                         "onlyWhileOffline":false,"inBackground":true}}"#,
        )
        .unwrap();
        settings.save_options(&full).unwrap();
        settings
            .save_user(&StoredUser {
                id: "alice".into(),
                token: Some("login-t0ken".into()),
            })
            .unwrap();
        assert_eq!(settings.options().unwrap(), Some(full));
        let file = std::fs::read_to_string(settings.path()).unwrap();
        assert!(
            !file.contains("s3cret") && !file.contains("login-t0ken"),
            "{file}"
        );
        assert_eq!(
            secrets.get(AUTH_TOKEN_KEY.into()).unwrap().as_deref(),
            Some("s3cret")
        );
        assert_eq!(
            settings.user().unwrap().unwrap().token.as_deref(),
            Some("login-t0ken")
        );
        settings.clear_user().unwrap();
        assert_eq!(settings.user().unwrap(), None);
        assert_eq!(secrets.get(LOGIN_TOKEN_KEY.into()).unwrap(), None);
        // The options survive a logout; switching to the dev route drops the stored token.
        let dev = parse(r#"{"serverUrl":"http://127.0.0.1:5000"}"#).unwrap();
        settings.save_options(&dev).unwrap();
        assert_eq!(settings.options().unwrap(), Some(dev));
        assert_eq!(secrets.get(AUTH_TOKEN_KEY.into()).unwrap(), None);
    }

    #[test]
    fn a_fixed_token_without_its_secret_or_a_damaged_file_reads_as_not_configured() {
        let (_dir, settings, secrets) = settings();
        let fixed =
            parse(r#"{"serverUrl":"https://x","auth":{"kind":"fixed","token":"t"}}"#).unwrap();
        settings.save_options(&fixed).unwrap();
        secrets.remove(AUTH_TOKEN_KEY.into()).unwrap();
        assert_eq!(settings.options().unwrap(), None);
        std::fs::write(settings.path(), b"{ half a file").unwrap();
        assert_eq!(settings.options().unwrap(), None);
        assert_eq!(settings.user().unwrap(), None);
    }
}
