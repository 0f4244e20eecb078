//! Why a model file could not be read: always naming the file and the problem.

use std::path::{Path, PathBuf};

/// A model file problem.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}: {kind}", path.display())]
pub struct ModelError {
    pub path: PathBuf,
    pub kind: ModelErrorKind,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelErrorKind {
    #[error("cannot read the file: {0}")]
    Io(String),
    #[error("the file is truncated: {0}")]
    Truncated(String),
    #[error("not a valid {format} file: {reason}")]
    Malformed { format: &'static str, reason: String },
    /// A PyTorch pickle asked for code Kiln will not run.
    #[error(
        "refused to load: the pickle calls {0}, which is not a tensor-rebuild function (a safe loader runs no code)"
    )]
    ForbiddenGlobal(String),
    #[error("the file is larger than Kiln accepts for this part ({0})")]
    TooLarge(String),
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// Tensors do not match what the detected architecture needs.
    #[error("does not match {architecture}: {reason}")]
    WrongArchitecture { architecture: String, reason: String },
}

impl ModelError {
    pub fn new(path: &Path, kind: ModelErrorKind) -> Self {
        Self { path: path.to_path_buf(), kind }
    }

    pub fn malformed(path: &Path, format: &'static str, reason: impl Into<String>) -> Self {
        Self::new(path, ModelErrorKind::Malformed { format, reason: reason.into() })
    }
}
