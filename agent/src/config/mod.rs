//! keepalived.conf: the language (lexer, tree), the typed model, and validation with
//! keepalived's diagnostics. No I/O but reading the config files (and, for `-t`, looking at
//! the host: interfaces, scripts).

pub mod diag;
pub mod lexer;
pub mod tree;
