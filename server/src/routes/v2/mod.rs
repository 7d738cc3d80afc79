//! Protocol v2's routes (docs/protocol.md, "Protocol v2"): the writes that change a message after
//! it was sent, receipts and typing, history with state, and the sync over the change stream.
//! Every write is idempotent per (user, kind of write, txn id) and answers the state it
//! affected, as the requesting user sees it (`me` in reactions, `txn_id` for the sender only).

pub mod messages;
pub mod reads;
pub mod sync;

use crate::error::ApiError;
use crate::store::Refusal;

/// The answer to a refused write about message `message_id`.
fn refused(refusal: Refusal, message_id: u64) -> ApiError {
    match refusal {
        Refusal::NoSuchMessage => {
            ApiError::not_found(format!("no message {message_id} in this room"))
        }
        Refusal::NotSender => ApiError::forbidden("only its sender can edit or delete a message"),
        Refusal::Deleted => ApiError::conflict(format!("message {message_id} is deleted")),
        Refusal::TooManyReactions => ApiError::conflict(format!(
            "you have {} reactions on this message already; remove one first",
            chatsync_protocol::v2::MAX_REACTION_KEYS_PER_USER
        )),
    }
}
