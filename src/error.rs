//! The extension's one error type. Every error a user can cause is reported through here with a
//! real SQLSTATE, a short message that names the rule or type (never the offending value: it may
//! be PHI), and a DETAIL/HINT where they help. `error!()` and panics (SQLSTATE XX000) are for bugs.
//!
//! Capability modules keep their pure logic free of pgrx: they return their own error enums and
//! convert them into [`SafeguardError`] at the SQL boundary.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafeguardError {
    pub code: PgSqlErrorCode,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl SafeguardError {
    pub fn new(code: PgSqlErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            detail: None,
            hint: None,
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Raise the error in PostgreSQL: aborts the current statement, never returns.
    #[track_caller]
    pub fn report(self) -> ! {
        let mut report = ErrorReport::new(self.code, self.message, "pg_safeguard");
        if let Some(detail) = self.detail {
            report = report.set_detail(detail);
        }
        if let Some(hint) = self.hint {
            report = report.set_hint(hint);
        }
        report.report(PgLogLevel::ERROR);
        unreachable!("ereport(ERROR) returned")
    }
}

impl SafeguardError {
    /// Log the error as a WARNING, with `consequence` added to its hint: for failures that must
    /// not stop what is running (the postmaster starting).
    #[track_caller]
    pub fn as_warning(self, consequence: &str) {
        let mut report = ErrorReport::new(self.code, self.message, "pg_safeguard");
        if let Some(detail) = self.detail {
            report = report.set_detail(detail);
        }
        let hint = match self.hint {
            Some(hint) => format!("{hint} Meanwhile {consequence}."),
            None => format!("Meanwhile {consequence}."),
        };
        report.set_hint(hint).report(PgLogLevel::WARNING);
    }
}

/// `result.or_report()` at the SQL boundary: the value, or the error raised with its SQLSTATE.
pub trait OrReport<T> {
    fn or_report(self) -> T;
}

impl<T, E: Into<SafeguardError>> OrReport<T> for Result<T, E> {
    #[track_caller]
    #[inline]
    fn or_report(self) -> T {
        match self {
            Ok(value) => value,
            Err(error) => error.into().report(),
        }
    }
}
