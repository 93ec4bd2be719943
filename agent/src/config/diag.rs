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

/// `"file:line"` in `--dump-config`.
impl serde::Serialize for Loc {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// How a diagnostic counts for the config test: keepalived's `config_err_t`, collapsed to the
/// distinctions its `-t` exit status makes, in keepalived's order. keepalived keeps the *last*
/// class of that order it has seen (so a fatal error plus an ordinary one exits as an ordinary
/// one), and so does [`Diags::exit_code`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    /// Reported, but not a config error (keepalived logs it and `-t` passes).
    Note,
    /// keepalived cannot run this config (missing file, bad interface, fatal): exit 4.
    CannotRun,
    /// A config error or warning keepalived runs despite: exit 5.
    Config,
    /// Scripts would run as root without `enable_script_security`: exit 6.
    Security,
}

/// keepalived's `-t` exit statuses.
pub const EXIT_OK: i32 = 0;
/// A keyword is missing its value: keepalived stops reading at once.
pub const EXIT_MISSING_PARAMETER: i32 = 2;
/// A file that must exist (`includem`) does not: keepalived stops (KEEPALIVED_EXIT_NO_CONFIG).
pub const EXIT_NO_CONFIG: i32 = 6;
pub const EXIT_CANNOT_RUN: i32 = 4;
pub const EXIT_CONFIG: i32 = 5;
pub const EXIT_SECURITY: i32 = 6;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub class: Class,
    pub loc: Option<Loc>,
    /// The column of the offending word, for malformed values.
    pub col: Option<u32>,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // keepalived's format, "(FILE: Line N) message"; a malformed value also says where on
        // the line it is.
        match (&self.loc, self.col) {
            (Some(loc), Some(col)) => {
                write!(
                    f,
                    "({}: Line {}, column {col}) {}",
                    loc.file.display(),
                    loc.line,
                    self.message
                )
            }
            (Some(loc), None) => write!(
                f,
                "({}: Line {}) {}",
                loc.file.display(),
                loc.line,
                self.message
            ),
            (None, _) => f.write_str(&self.message),
        }
    }
}

/// Collects diagnostics while a config is read.
#[derive(Debug, Default)]
pub struct Diags {
    pub list: Vec<Diagnostic>,
    /// keepalived stopped reading here (a keyword missing its value, a required file missing),
    /// with this exit status; so do we.
    pub stopped: Option<i32>,
    /// Said once the whole file is read (see [`Self::after_reading`]).
    later: Vec<Diagnostic>,
}

impl Diags {
    /// A config error (keepalived's unknown keyword, invalid number, general error, warning,
    /// deprecated: all make `-t` exit 5).
    pub fn config(&mut self, loc: Option<&Loc>, message: impl Into<String>) {
        self.push(Class::Config, loc, message);
    }

    pub fn cannot_run(&mut self, loc: Option<&Loc>, message: impl Into<String>) {
        self.push(Class::CannotRun, loc, message);
    }

    pub fn security(&mut self, loc: Option<&Loc>, message: impl Into<String>) {
        self.push(Class::Security, loc, message);
    }

    pub fn note(&mut self, loc: Option<&Loc>, message: impl Into<String>) {
        self.push(Class::Note, loc, message);
    }

    /// A config error keepalived finds when it checks what it read, after the whole file
    /// (check_data.c's validation): no line, said after everything found while reading.
    pub fn after_reading(&mut self, message: impl Into<String>) {
        if self.stopped.is_none() {
            self.later.push(Diagnostic {
                class: Class::Config,
                loc: None,
                col: None,
                message: message.into(),
            });
        }
    }

    /// The file is read: what [`Self::after_reading`] held is said now.
    pub fn read_to_end(&mut self) {
        if self.stopped.is_none() {
            self.list.append(&mut self.later);
        }
        self.later.clear();
    }

    /// Reported, and reading stops with exit status `code` (keepalived exits on the spot).
    pub fn stop(&mut self, code: i32, loc: Option<&Loc>, message: impl Into<String>) {
        self.push(Class::Config, loc, message);
        self.stopped.get_or_insert(code);
    }

    /// A malformed value at column `col` of `loc`'s line (a config error).
    pub fn value(&mut self, loc: &Loc, col: u32, message: impl Into<String>) {
        self.push(Class::Config, Some(loc), message);
        if let Some(last) = self.list.last_mut() {
            last.col = Some(col);
        }
    }

    pub fn push(&mut self, class: Class, loc: Option<&Loc>, message: impl Into<String>) {
        if self.stopped.is_some() {
            return;
        }
        self.list.push(Diagnostic {
            class,
            loc: loc.cloned(),
            col: None,
            message: message.into(),
        });
    }

    /// The exit status keepalived 2.2.7's `-t` gives for these diagnostics.
    pub fn exit_code(&self) -> i32 {
        if let Some(code) = self.stopped {
            return code;
        }
        match self
            .list
            .iter()
            .map(|d| d.class)
            .filter(|c| *c != Class::Note)
            .max()
        {
            None => EXIT_OK,
            Some(Class::Note) => EXIT_OK,
            Some(Class::CannotRun) => EXIT_CANNOT_RUN,
            Some(Class::Config) => EXIT_CONFIG,
            Some(Class::Security) => EXIT_SECURITY,
        }
    }
}
