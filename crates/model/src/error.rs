//! [`ValidationError`]: why a value breaks a registry rule, naming the field; [`Invalid`] is the
//! result type of every validation function in this crate.

use thiserror::Error;

/// A value that does not satisfy the registry's rules. `field` names what was wrong so that the
/// API and the CLI can point at it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    pub field: String,
    pub message: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

pub type Invalid<T> = Result<T, ValidationError>;
