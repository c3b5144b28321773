//! Database store.
