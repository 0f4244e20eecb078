//! The error every operation returns across both doors: `{code, message, details}`.
//!
//! Each engine module keeps its own typed error (`thiserror`) and converts it here at the
//! operation boundary. The codes are stable: the UI, scripts and the HTTP status mapping key on
//! them, so a code is never renamed or reused for another meaning.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// Why an operation failed, in a form that never changes meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request's input did not parse or failed validation.
    InvalidInput,
    /// No operation has this name.
    UnknownOperation,
    /// The device, model or job named in the request does not exist.
    NotFound,
    /// The device or driver cannot do this (for example, setting a power limit on a CPU).
    Unsupported,
    /// The driver or the operating system refused for lack of privileges.
    PermissionDenied,
    /// The GPU driver or a telemetry library reported an error.
    DriverError,
    /// GPU work failed: a kernel error, a lost device or a panic caught at the job boundary.
    ComputeFailed,
    /// The device ran out of memory.
    OutOfMemory,
    /// The device stopped answering: its watchdog saw work there make no progress past the
    /// time it was expected to take. The device's health says so until it answers again.
    DeviceStalled,
    /// The same work is already running; try again when it ends.
    Busy,
    /// The work was cancelled (a job cancelled by the user stops with this).
    Cancelled,
    /// Reading or writing a file failed.
    Io,
    /// A model file is malformed, truncated, of the wrong architecture, or asks to run code.
    InvalidModel,
    /// A defect in Kiln; the message says where.
    Internal,
    /// The HTTP door: the per-launch token is missing or wrong.
    Unauthorized,
    /// The HTTP door: the Host header is not one this server answers to.
    ForbiddenHost,
    /// The HTTP door: the request came from a page of another origin (or `Origin: null`).
    ForbiddenOrigin,
    /// The HTTP door: this operation does not accept that method (queries are GET, changes POST).
    MethodNotAllowed,
}

/// An operation's failure as both doors carry it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// Stable machine-readable reason.
    pub code: ErrorCode,
    /// A sentence for people: what failed and, where known, what to do.
    pub message: String,
    /// Structured context (the device id, the path, the driver's own error text).
    #[ts(optional)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), details: None }
    }

    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidInput, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }
}

impl From<kiln_models::ModelError> for ApiError {
    fn from(error: kiln_models::ModelError) -> Self {
        use kiln_models::ModelErrorKind;
        let code = match &error.kind {
            ModelErrorKind::Io(_) => ErrorCode::Io,
            ModelErrorKind::Unsupported(_) => ErrorCode::Unsupported,
            _ => ErrorCode::InvalidModel,
        };
        ApiError::new(code, error.to_string())
            .with_details(serde_json::json!({ "path": error.path.display().to_string() }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_as_code_message_details() {
        let error = ApiError::new(ErrorCode::NotFound, "no device gpu-9")
            .with_details(serde_json::json!({ "device": "gpu-9" }));
        let json = serde_json::to_value(&error).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "code": "not_found",
                "message": "no device gpu-9",
                "details": { "device": "gpu-9" }
            })
        );
    }

    #[test]
    fn details_are_left_out_when_absent() {
        let json = serde_json::to_string(&ApiError::invalid_input("bad")).unwrap();
        assert_eq!(json, r#"{"code":"invalid_input","message":"bad"}"#);
    }
}
