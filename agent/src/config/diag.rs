//! Diagnostics: what the config layer reports, where, and how bad it is. The texts follow
//! keepalived's so operators recognise them; the location is always file:line.

use std::{fmt, path::PathBuf, sync::Arc};

/// A place in a config file.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Loc {
    pub file: Arc<PathBuf>,
    /// 1-based.
    pub line: u32,
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Informational, like keepalived's plain log lines about the config.
    Info,
    /// keepalived logs and carries on; the config still loads.
    Warning,
    /// A config error (keepalived's report_config_error): the config test fails.
    Error,
}

/// What kind of failure a diagnostic is, deciding `-t`'s exit status as keepalived does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    /// Nothing that changes the exit status.
    None,
    /// An error in the configuration text.
    Config,
    /// Something on this host the configuration refers to (interface, script) is missing.
    Host,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub class: Class,
    pub loc: Option<Loc>,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // keepalived's format: "(FILE: Line N) message"; the message says how bad it is.
        match &self.loc {
            Some(loc) => write!(
                f,
                "({}: Line {}) {}",
                loc.file.display(),
                loc.line,
                self.message
            ),
            None => f.write_str(&self.message),
        }
    }
}

/// Collects diagnostics while a config is read.
#[derive(Debug, Default)]
pub struct Diags {
    pub list: Vec<Diagnostic>,
}

impl Diags {
    pub fn warn(&mut self, loc: Option<&Loc>, message: impl Into<String>) {
        self.push(Severity::Warning, Class::None, loc, message);
    }

    pub fn error(&mut self, loc: Option<&Loc>, message: impl Into<String>) {
        self.push(Severity::Error, Class::Config, loc, message);
    }

    pub fn host(&mut self, loc: Option<&Loc>, message: impl Into<String>) {
        self.push(Severity::Error, Class::Host, loc, message);
    }

    pub fn info(&mut self, loc: Option<&Loc>, message: impl Into<String>) {
        self.push(Severity::Info, Class::None, loc, message);
    }

    pub fn push(
        &mut self,
        severity: Severity,
        class: Class,
        loc: Option<&Loc>,
        message: impl Into<String>,
    ) {
        self.list.push(Diagnostic {
            severity,
            class,
            loc: loc.cloned(),
            message: message.into(),
        });
    }

    pub fn worst_class(&self) -> Class {
        self.list
            .iter()
            .map(|d| d.class)
            .max()
            .unwrap_or(Class::None)
    }
}
