//! keepalived.conf: the language (lexer, tree), the typed model, and validation with
//! keepalived's diagnostics. No I/O but reading the config files (and, for the checks of `-t`,
//! looking at the host through [`validate::Host`]).

pub mod diag;
pub mod lexer;
pub mod model;
pub mod parse;
pub mod tree;
pub mod validate;

use std::path::Path;

pub use diag::{Diagnostic, Diags};
pub use lexer::ReadOptions;
pub use model::Config;

/// A configuration as read, with everything said about it.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub diags: Diags,
}

impl Loaded {
    /// The exit status keepalived 2.2.7's `-t` gives for this file.
    pub fn exit_code(&self) -> i32 {
        self.diags.exit_code()
    }
}

/// Reads `path` (and its includes), builds the model and applies keepalived's rules, looking
/// at `host` for interfaces and scripts.
pub fn load(path: &Path, opts: &ReadOptions, host: &dyn validate::Host) -> Loaded {
    let mut diags = Diags::default();
    if !path.exists() {
        // keepalived -t exits 0 here; a config test of nothing must not pass, so vrrp-agent
        // exits with keepalived's own "no config" status instead (README: differences).
        diags.stop(
            diag::EXIT_NO_CONFIG,
            None,
            format!("Config files missing '{}'.", path.display()),
        );
        return Loaded {
            config: Config::default(),
            diags,
        };
    }
    let lines = lexer::read(path, opts, &mut diags);
    from_lines(&lines, host, diags)
}

/// As [`load`], for config text in memory (tests, fuzzing); `name` anchors relative includes.
pub fn load_str(name: &Path, text: &[u8], opts: &ReadOptions, host: &dyn validate::Host) -> Loaded {
    let mut diags = Diags::default();
    let lines = lexer::read_str(name, text, opts, &mut diags);
    from_lines(&lines, host, diags)
}

fn from_lines(lines: &[lexer::Line], host: &dyn validate::Host, mut diags: Diags) -> Loaded {
    let stmts = tree::build(lines, &mut diags);
    let mut config = parse::build(&stmts, &mut diags);
    if diags.stopped.is_none() {
        validate::validate(&mut config, host, &mut diags);
    }
    Loaded { config, diags }
}
