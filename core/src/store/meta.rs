//! The `meta` tree: the store's format version, the session and the sync token. Small values
//! read at open, so the app can render its last screen before any network I/O.

use serde::{Deserialize, Serialize};

use super::{decode, encode, StoreError};

/// Key of the format version (`u32` big-endian).
pub(crate) const FORMAT_VERSION_KEY: &[u8] = b"format_version";
/// Key of the stored [`Session`] (JSON).
pub(crate) const SESSION_KEY: &[u8] = b"session";
/// Key of the last `next_batch` token (UTF-8).
pub(crate) const SYNC_TOKEN_KEY: &[u8] = b"sync_token";
/// Present while the profile given at login has not reached the server yet.
pub(crate) const PROFILE_DIRTY_KEY: &[u8] = b"profile_dirty";

/// The login as stored (format 1). Its own type, not the API's: an API change must never change
/// the stored format. `friend_id` and `room_id` are what the first build kept for Chatkit's
/// tutorial; read and written as they are, used by nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredSession {
    pub user: StoredUser,
    pub friend_id: Option<String>,
    pub room_id: Option<String>,
}

/// A user as stored in [`StoredSession`] (GiftedChat's field names, as format 1 wrote them).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredUser {
    #[serde(rename = "_id")]
    pub id: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub avatar: Option<String>,
}

/// The `meta` tree.
#[derive(Clone)]
pub(crate) struct MetaTree(pub(super) sled::Tree);

impl MetaTree {
    pub fn session(&self) -> Result<Option<StoredSession>, StoreError> {
        self.0.get(SESSION_KEY)?.map(|v| decode(&v)).transpose()
    }

    pub fn put_session(&self, session: &StoredSession) -> Result<(), StoreError> {
        self.0.insert(SESSION_KEY, encode(session)?)?;
        Ok(())
    }

    pub fn sync_token(&self) -> Result<Option<String>, StoreError> {
        match self.0.get(SYNC_TOKEN_KEY)? {
            None => Ok(None),
            Some(v) => String::from_utf8(v.to_vec())
                .map(Some)
                .map_err(|_| StoreError::Corrupt("sync token is not UTF-8".into())),
        }
    }

    pub fn clear_sync_token(&self) -> Result<(), StoreError> {
        self.0.remove(SYNC_TOKEN_KEY)?;
        Ok(())
    }

    pub fn profile_dirty(&self) -> Result<bool, StoreError> {
        Ok(self.0.contains_key(PROFILE_DIRTY_KEY)?)
    }

    pub fn set_profile_dirty(&self, dirty: bool) -> Result<(), StoreError> {
        if dirty {
            self.0.insert(PROFILE_DIRTY_KEY, &[1u8])?;
        } else {
            self.0.remove(PROFILE_DIRTY_KEY)?;
        }
        Ok(())
    }
}
