//! The `users` tree: profiles (display name, avatar) of the people whose messages are shown,
//! so names and avatars render offline.

use chatsync_protocol::User;

use super::{decode, encode, StoreError};

/// The `users` tree: user id -> [`User`].
#[derive(Clone)]
pub(crate) struct UsersTree(pub(super) sled::Tree);

impl UsersTree {
    pub fn get(&self, user_id: &str) -> Result<Option<User>, StoreError> {
        self.0
            .get(user_id.as_bytes())?
            .map(|v| decode(&v))
            .transpose()
    }

    pub fn put(&self, user: &User) -> Result<(), StoreError> {
        self.0.insert(user.id.as_bytes(), encode(user)?)?;
        Ok(())
    }
}
