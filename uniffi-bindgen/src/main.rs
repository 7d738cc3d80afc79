//! The `uniffi-bindgen` command of this workspace: generates the Kotlin and Swift sources of
//! `chatsync-ffi` from the built library (`generate --library`). A binary of our own, so the
//! generator always matches the uniffi version the library was built with.

fn main() {
    uniffi::uniffi_bindgen_main()
}
