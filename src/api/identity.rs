//! Who is calling. An interceptor puts an [`Identity`] on every request; handlers read
//! "run by" and "saved by" from it, never from a request field.
//!
//! Without authentication configured (the embedded default, loopback only), every
//! caller is the configured local operator.

use tonic::service::Interceptor;
use tonic::{Request, Status};

/// The caller of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user name recorded as "run by" / "saved by".
    pub subject: String,
}

/// Gives every request the same identity: the local operator.
#[derive(Debug, Clone)]
pub struct LocalOperator {
    subject: String,
}

impl LocalOperator {
    /// An interceptor naming every caller `subject`.
    pub fn new(subject: impl Into<String>) -> Self {
        Self {
            subject: subject.into(),
        }
    }
}

impl Interceptor for LocalOperator {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request.extensions_mut().insert(Identity {
            subject: self.subject.clone(),
        });
        Ok(request)
    }
}
