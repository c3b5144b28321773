//! Who is calling. The authentication interceptor ([`super::auth`]) puts an
//! [`Identity`] on every request; handlers read "run by" and "saved by" from it, never
//! from a request field.

use std::collections::BTreeSet;

use super::auth::{Role, all_roles};

/// The caller of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user name recorded as "run by" / "saved by": the token's `sub`.
    pub subject: String,
    /// The roles the caller holds.
    pub roles: BTreeSet<Role>,
}

impl Identity {
    /// The local operator of a service without authentication: every role.
    pub fn local(subject: impl Into<String>) -> Self {
        Self {
            subject: subject.into(),
            roles: all_roles(),
        }
    }
}
