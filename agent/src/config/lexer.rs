//! keepalived.conf text → logical lines of tokens, with file:line kept for every line.
//!
//! Does what keepalived's reader does before any keyword is looked at: `include` (globs,
//! relative to the including file, missing files skipped), line continuation with a trailing
//! `\`, `@ID` / `@^ID` conditional lines against the config id, `$NAME=value` parameters and
//! their `$NAME` / `${NAME}` substitution, the `~SEQ(...)` and `~LST(...)` line generators,
//! comments (`!` or `#` outside quotes), quotes and braces as tokens of their own.
//!
//! Limits keep hostile input bounded: include depth, files per glob, generated lines, line
//! length; each is reported as an error with its location, never a panic.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Arc,
};

use super::diag::{Diags, Loc};

/// keepalived refuses deeper include nesting; it also stops include loops.
pub const MAX_INCLUDE_DEPTH: usize = 16;
/// Files one `include` may bring in.
pub const MAX_GLOB_FILES: usize = 4096;
/// Lines one `~SEQ`/`~LST` may generate.
pub const MAX_GENERATED_LINES: usize = 100_000;
/// Longest logical line accepted (after continuation and substitution).
pub const MAX_LINE: usize = 64 * 1024;
/// Substitution passes over one line (a parameter may refer to another).
const MAX_SUBSTITUTIONS: usize = 32;

/// One token of a line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub text: String,
    /// Written in quotes: never a brace, never a comment.
    pub quoted: bool,
    /// 1-based column (in characters) where the token starts on its logical line.
    pub col: u32,
}

impl Token {
    pub fn is(&self, s: &str) -> bool {
        !self.quoted && self.text == s
    }
}

/// A logical line: its tokens and where it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub loc: Loc,
    pub tokens: Vec<Token>,
}

#[derive(Clone, Debug)]
pub struct ReadOptions {
    /// The config id `@ID` lines are matched against (keepalived's `-i`, default: the short
    /// host name).
    pub config_id: String,
    /// Read `include`d files (off when fuzzing: the parser is under test, not the filesystem).
    pub follow_includes: bool,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            config_id: short_hostname(),
            follow_includes: true,
        }
    }
}

/// The host name up to its first dot, as keepalived's default config id.
pub fn short_hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is valid for its length; gethostname NUL-terminates within it on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return String::new();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..end]).into_owned();
    name.split('.').next().unwrap_or("").to_string()
}

struct Reader<'a> {
    opts: &'a ReadOptions,
    diags: &'a mut Diags,
    params: HashMap<String, String>,
    lines: Vec<Line>,
    stack: Vec<PathBuf>,
}

/// Reads `path` and everything it includes.
pub fn read(path: &Path, opts: &ReadOptions, diags: &mut Diags) -> Vec<Line> {
    let mut reader = Reader::new(opts, diags);
    reader.file(path, None);
    reader.lines
}

/// Reads config text given in memory (tests, fuzzing); includes resolve against `name`'s dir.
pub fn read_str(name: &Path, text: &[u8], opts: &ReadOptions, diags: &mut Diags) -> Vec<Line> {
    let mut reader = Reader::new(opts, diags);
    reader.text(name, text);
    reader.lines
}

impl<'a> Reader<'a> {
    fn new(opts: &'a ReadOptions, diags: &'a mut Diags) -> Self {
        Reader {
            opts,
            diags,
            params: HashMap::new(),
            lines: Vec::new(),
            stack: Vec::new(),
        }
    }

    fn file(&mut self, path: &Path, from: Option<&Loc>) {
        let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        if self.stack.contains(&canonical) {
            self.diags.note(
                from,
                format!(
                    "Configuration file {} includes itself - ignoring",
                    path.display()
                ),
            );
            return;
        }
        if self.stack.len() >= MAX_INCLUDE_DEPTH {
            self.diags.config(
                from,
                format!(
                    "include depth exceeds {MAX_INCLUDE_DEPTH} at {} - ignoring",
                    path.display()
                ),
            );
            return;
        }
        let text = match std::fs::read(path) {
            Ok(text) => text,
            Err(e) => {
                if from.is_none() {
                    self.diags.config(
                        None,
                        format!(
                            "Configuration file '{}' could not be read: {e}",
                            path.display()
                        ),
                    );
                } else {
                    self.diags.note(
                        from,
                        format!("Could not open included file {}: {e}", path.display()),
                    );
                }
                return;
            }
        };
        self.stack.push(canonical);
        self.text(path, &text);
        self.stack.pop();
    }

    fn text(&mut self, path: &Path, text: &[u8]) {
        let file = Arc::new(path.to_path_buf());
        let text = String::from_utf8_lossy(text);
        let mut physical = text.split('\n').enumerate().peekable();
        while let Some((index, raw)) = physical.next() {
            let loc = Loc {
                file: file.clone(),
                line: index as u32 + 1,
            };
            // A trailing backslash continues a `$NAME=` definition onto the next line. On any other
            // line keepalived keeps it as part of the word (`virtual_router_id\` is then an
            // unknown keyword), and so do we.
            let mut line = raw.trim_end_matches('\r').to_string();
            let definition =
                line.trim_start_matches(is_space).starts_with('$') && line.contains('=');
            while definition && line.ends_with('\\') && !in_comment_or_quote_at_end(&line) {
                line.pop();
                // A multi-line parameter keeps its line breaks: used alone on a line, it
                // expands to several lines (a list of VIPs, a whole block).
                match physical.next() {
                    Some((_, next)) => {
                        line.push('\n');
                        line.push_str(next.trim_end_matches('\r'));
                    }
                    None => break,
                }
                if line.len() > MAX_LINE {
                    break;
                }
            }
            if line.len() > MAX_LINE {
                self.diags.config(
                    Some(&loc),
                    format!("line longer than {MAX_LINE} bytes - ignoring"),
                );
                continue;
            }
            self.logical(&loc, &line);
        }
    }

    fn logical(&mut self, loc: &Loc, line: &str) {
        let trimmed = line.trim_start_matches(is_space);
        // Token columns count from the start of the written line.
        let indent = (line.len() - trimmed.len()) as u32;
        // @ID line / @^ID line: the line counts only on a host whose config id is (not) ID.
        let line = if let Some(rest) = trimmed.strip_prefix('@') {
            let (cond, rest) = rest.split_once(is_space).unwrap_or((rest, ""));
            let (negate, id) = match cond.strip_prefix('^') {
                Some(id) => (true, id),
                None => (false, cond),
            };
            if (id == self.opts.config_id) == negate {
                return;
            }
            rest.trim_start_matches(is_space)
        } else {
            trimmed
        };
        // $NAME=value defines a parameter (no spaces before '=').
        if let Some(def) = line.strip_prefix('$')
            && let Some((name, value)) = def.split_once('=')
            && is_param_name(name)
        {
            self.params
                .insert(name.to_string(), value.trim().to_string());
            return;
        }
        // Generators first (on the line as written), then parameters (a multi-line value
        // becomes several lines), then tokens.
        for generated in self.generate(loc, line) {
            let Some(substituted) = self.substitute(loc, &generated) else {
                continue;
            };
            for piece in substituted.split('\n') {
                self.tokens(loc, piece, indent);
            }
        }
    }

    fn tokens(&mut self, loc: &Loc, line: &str, indent: u32) {
        let (mut tokens, unmatched_quote) = tokenize_checked(line);
        for token in &mut tokens {
            token.col += indent;
        }
        if unmatched_quote {
            self.diags.config(
                Some(loc),
                format!("Unmatched quote: '{}'", line.trim_matches(is_space)),
            );
        }
        if tokens.is_empty() {
            return;
        }
        if tokens[0].is("include") || tokens[0].is("includem") {
            self.include(loc, &tokens[1..], tokens[0].is("includem"));
            return;
        }
        self.lines.push(Line {
            loc: loc.clone(),
            tokens,
        });
    }

    /// `include` skips a pattern that matches nothing; `includem` (must exist) stops there.
    fn include(&mut self, loc: &Loc, args: &[Token], must_exist: bool) {
        if !self.opts.follow_includes {
            self.diags.note(Some(loc), "include not followed");
            return;
        }
        let Some(pattern) = args.first() else {
            self.diags.config(Some(loc), "include requires a file name");
            return;
        };
        let base = loc.file.parent().map(Path::to_path_buf).unwrap_or_default();
        let pattern_path = Path::new(&pattern.text);
        let full = if pattern_path.is_absolute() {
            pattern_path.to_path_buf()
        } else {
            base.join(pattern_path)
        };
        let full_text = full.to_string_lossy().into_owned();
        let files = match glob(&full_text) {
            Ok(files) => files,
            Err(e) => {
                self.diags
                    .note(Some(loc), format!("include {}: {e}", pattern.text));
                return;
            }
        };
        if files.is_empty() && must_exist {
            self.diags.stop(
                super::diag::EXIT_NO_CONFIG,
                Some(loc),
                format!("Config files missing '{}'.", pattern.text),
            );
            return;
        }
        if files.is_empty() {
            // keepalived skips a missing include and carries on (it says so only when asked to
            // with include_check).
            self.diags.note(
                Some(loc),
                format!("Unable to find configuration file {}", pattern.text),
            );
            return;
        }
        if files.len() > MAX_GLOB_FILES {
            self.diags.config(
                Some(loc),
                format!(
                    "include {} matches {} files (limit {MAX_GLOB_FILES})",
                    pattern.text,
                    files.len()
                ),
            );
            return;
        }
        for file in files {
            self.file(&file, Some(loc));
        }
    }

    /// Replaces `$NAME` and `${NAME}` with parameter values. Unknown names are left as written.
    fn substitute(&mut self, loc: &Loc, line: &str) -> Option<String> {
        if !line.contains('$') {
            return Some(line.to_string());
        }
        let mut current = line.to_string();
        for _ in 0..MAX_SUBSTITUTIONS {
            let next = substitute_once(&current, &self.params);
            if next == current {
                return Some(current);
            }
            if next.len() > MAX_LINE {
                self.diags.config(
                    Some(loc),
                    format!(
                        "line longer than {MAX_LINE} bytes after parameter substitution - ignoring"
                    ),
                );
                return None;
            }
            current = next;
        }
        self.diags.config(Some(loc), "parameter substitution does not terminate (a parameter refers to itself?) - ignoring line");
        None
    }

    /// Expands `~SEQ(VAR, START, END[, STEP])` and `~LST(VAR, A, B, ...)` at the start of a line
    /// into one line per value, with `$VAR` / `${VAR}` replaced.
    fn generate(&mut self, loc: &Loc, line: &str) -> Vec<String> {
        let Some(rest) = line.strip_prefix('~') else {
            return vec![line.to_string()];
        };
        let (kind, rest) = if let Some(r) = rest.strip_prefix("SEQ(") {
            ("SEQ", r)
        } else if let Some(r) = rest.strip_prefix("LST(") {
            ("LST", r)
        } else {
            return vec![line.to_string()];
        };
        let Some((inside, body)) = rest.split_once(')') else {
            self.diags
                .config(Some(loc), format!("~{kind}: missing ')'"));
            return Vec::new();
        };
        let args: Vec<&str> = inside.split(',').map(str::trim).collect();
        let Some((var, values)) = args.split_first() else {
            return Vec::new();
        };
        if !is_param_name(var) {
            self.diags
                .config(Some(loc), format!("~{kind}: invalid variable name '{var}'"));
            return Vec::new();
        }
        let values: Vec<String> = if kind == "LST" {
            values.iter().map(|v| v.to_string()).collect()
        } else {
            let nums: Result<Vec<i64>, _> = values.iter().map(|v| v.parse::<i64>()).collect();
            let (start, end, step) = match nums.as_deref() {
                Ok([start, end]) => (*start, *end, if end >= start { 1 } else { -1 }),
                Ok([start, end, step]) if *step != 0 => (*start, *end, *step),
                _ => {
                    self.diags.config(Some(loc), format!("~SEQ({inside}): expected (var, start, end[, step]) with integers and a non-zero step"));
                    return Vec::new();
                }
            };
            let count = ((end - start) / step)
                .checked_add(1)
                .filter(|c| *c >= 0)
                .unwrap_or(0) as u64;
            if count > MAX_GENERATED_LINES as u64 {
                self.diags.config(
                    Some(loc),
                    format!(
                        "~SEQ({inside}) would generate {count} lines (limit {MAX_GENERATED_LINES})"
                    ),
                );
                return Vec::new();
            }
            (0..count as i64)
                .map(|i| (start + i * step).to_string())
                .collect()
        };
        let mut out = Vec::with_capacity(values.len());
        for value in values {
            // The loop variable is a parameter while this line is generated; the body is
            // substituted now so that a parameter whose value uses it (`$INST` holding
            // `VI_${i}`) sees this value.
            let saved = self.params.insert(var.to_string(), value);
            let body = self.substitute(loc, body.trim_start_matches(is_space));
            match saved {
                Some(old) => self.params.insert(var.to_string(), old),
                None => self.params.remove(*var),
            };
            let Some(body) = body else { return Vec::new() };
            // A generated line may itself start with a generator.
            out.extend(self.generate(loc, &body));
            if out.len() > MAX_GENERATED_LINES {
                self.diags.config(
                    Some(loc),
                    format!("~{kind} generates more than {MAX_GENERATED_LINES} lines"),
                );
                return Vec::new();
            }
        }
        out
    }
}

/// keepalived splits on C `isspace` in the C locale only: a non-breaking space (common in
/// configs pasted from web pages) is part of a word, as it is for keepalived.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

fn is_param_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn substitute_once(line: &str, params: &HashMap<String, String>) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, consumed) = if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => (&braced[..end], end + 2),
                None => ("", 0),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        match params.get(name) {
            Some(value) if !name.is_empty() => {
                out.push_str(value);
                rest = &after[consumed..];
            }
            _ => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// True when a trailing backslash is inside quotes or a comment (then it continues nothing).
fn in_comment_or_quote_at_end(line: &str) -> bool {
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '!' || c == '#' => return true,
            None => {}
        }
    }
    quote.is_some()
}

/// Splits a line into tokens: whitespace separates, `{` and `}` are tokens of their own,
/// `"..."` and `'...'` make one token, `!` or `#` outside quotes starts a comment.
pub fn tokenize(line: &str) -> Vec<Token> {
    tokenize_checked(line).0
}

/// [`tokenize`], and whether a quote was left open.
fn tokenize_checked(line: &str) -> (Vec<Token>, bool) {
    let mut unmatched = false;
    let mut tokens = Vec::new();
    let mut chars = line.chars().zip(1u32..).peekable();
    // The word being read and the column it started at.
    let mut current = String::new();
    let mut start = 0;
    let flush = |current: &mut String, start: u32, tokens: &mut Vec<Token>| {
        if !current.is_empty() {
            tokens.push(Token {
                text: std::mem::take(current),
                quoted: false,
                col: start,
            });
        }
    };
    while let Some((c, col)) = chars.next() {
        match c {
            '!' | '#' => break,
            '{' | '}' => {
                flush(&mut current, start, &mut tokens);
                tokens.push(Token {
                    text: c.to_string(),
                    quoted: false,
                    col,
                });
            }
            '"' | '\'' if current.is_empty() => {
                let mut quoted = String::new();
                let mut closed = false;
                for (q, _) in chars.by_ref() {
                    if q == c {
                        closed = true;
                        break;
                    }
                    quoted.push(q);
                }
                unmatched |= !closed;
                tokens.push(Token {
                    text: quoted,
                    quoted: true,
                    col,
                });
            }
            c if is_space(c) => flush(&mut current, start, &mut tokens),
            c => {
                if current.is_empty() {
                    start = col;
                }
                current.push(c);
            }
        }
    }
    flush(&mut current, start, &mut tokens);
    (tokens, unmatched)
}

/// Paths matching `pattern` (`*`, `?`, `[...]` in the last components), sorted.
fn glob(pattern: &str) -> Result<Vec<PathBuf>, String> {
    if !pattern.contains(['*', '?', '[']) {
        let path = PathBuf::from(pattern);
        return Ok(if path.is_file() {
            vec![path]
        } else {
            Vec::new()
        });
    }
    let c_pattern = std::ffi::CString::new(pattern).map_err(|_| "NUL in pattern".to_string())?;
    // SAFETY: glob_t is plain data; zeroed is its documented initial state.
    let mut g: libc::glob_t = unsafe { std::mem::zeroed() };
    // SAFETY: valid pattern and glob_t; globfree below releases what glob allocated.
    let rc = unsafe { libc::glob(c_pattern.as_ptr(), 0, None, &mut g) };
    let mut out = Vec::new();
    if rc == 0 {
        for i in 0..g.gl_pathc {
            // SAFETY: gl_pathv holds gl_pathc valid C strings.
            let s = unsafe { std::ffi::CStr::from_ptr(*g.gl_pathv.add(i)) };
            let path = PathBuf::from(s.to_string_lossy().into_owned());
            if path.is_file() {
                out.push(path);
            }
            if out.len() > MAX_GLOB_FILES {
                break;
            }
        }
    }
    // SAFETY: g was filled by glob (or is still zeroed, which globfree accepts).
    unsafe { libc::globfree(&mut g) };
    if rc != 0 && rc != libc::GLOB_NOMATCH {
        return Err(format!("glob failed ({rc})"));
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(line: &str) -> Vec<String> {
        tokenize(line).into_iter().map(|t| t.text).collect()
    }

    fn lines(text: &str) -> (Vec<Vec<String>>, Diags) {
        let mut diags = Diags::default();
        let opts = ReadOptions {
            config_id: "lb01".into(),
            follow_includes: true,
        };
        let lines = read_str(
            Path::new("/nonexistent/k.conf"),
            text.as_bytes(),
            &opts,
            &mut diags,
        );
        (
            lines
                .into_iter()
                .map(|l| l.tokens.into_iter().map(|t| t.text).collect())
                .collect(),
            diags,
        )
    }

    #[test]
    fn braces_are_tokens_even_when_attached() {
        assert_eq!(texts("vrrp_instance VI_1{"), ["vrrp_instance", "VI_1", "{"]);
        assert_eq!(
            texts("virtual_ipaddress { 10.0.0.1 }"),
            ["virtual_ipaddress", "{", "10.0.0.1", "}"]
        );
        assert_eq!(texts("}x"), ["}", "x"]);
    }

    #[test]
    fn comments_start_at_bang_or_hash_outside_quotes() {
        assert_eq!(texts("interval 2        #时间间隔"), ["interval", "2"]);
        assert_eq!(texts("! whole line"), Vec::<String>::new());
        assert_eq!(
            texts(r#"script "/bin/x # not a comment" ! comment"#),
            ["script", "/bin/x # not a comment"]
        );
    }

    #[test]
    fn only_ascii_whitespace_separates_words() {
        assert_eq!(texts("a\u{a0}b c\td"), ["a\u{a0}b", "c", "d"]);
        assert_eq!(texts("{\u{a0}\u{a0}#x"), ["{", "\u{a0}\u{a0}"]);
    }

    #[test]
    fn quotes_make_one_token() {
        assert_eq!(
            texts(r#"notify "/bin/x a b" 'c d'"#),
            ["notify", "/bin/x a b", "c d"]
        );
    }

    #[test]
    fn continuation_joins_parameter_definitions_only() {
        let (lines, _) = lines("$V=a \\\n  b\nx $V\ny \\\nz\n");
        // The value keeps its line break: substituted, it is two lines (keepalived's multi-line
        // parameters, used for lists of VIPs or whole blocks).
        assert_eq!(
            lines,
            [vec!["x", "a"], vec!["b"], vec!["y", "\\"], vec!["z"]]
        );
    }

    #[test]
    fn parameters_substitute_plain_and_braced() {
        let (lines, _) =
            lines("$IF=eth0\n$PRIO=100\ninterface $IF\npriority ${PRIO}0\nx $UNKNOWN\n");
        assert_eq!(
            lines,
            [
                vec!["interface", "eth0"],
                vec!["priority", "1000"],
                vec!["x", "$UNKNOWN"]
            ]
        );
    }

    #[test]
    fn conditional_lines_follow_the_config_id() {
        let (lines, _) = lines(
            "@lb01 priority 150\n@lb02 priority 100\n@^lb01 state BACKUP\n@^lb02 state MASTER\n",
        );
        assert_eq!(lines, [vec!["priority", "150"], vec!["state", "MASTER"]]);
    }

    #[test]
    fn seq_and_lst_generate_lines() {
        let (lines, _) =
            lines("~SEQ(i, 1, 3) 10.0.0.$i\n~LST(n, a, b) x_${n}\n~SEQ(i,5,1,-2) $i\n");
        assert_eq!(
            lines,
            [
                vec!["10.0.0.1"],
                vec!["10.0.0.2"],
                vec!["10.0.0.3"],
                vec!["x_a"],
                vec!["x_b"],
                vec!["5"],
                vec!["3"],
                vec!["1"]
            ]
        );
    }

    #[test]
    fn huge_sequences_are_refused_not_generated() {
        let (lines, diags) = lines("~SEQ(i, 1, 100000000000) x\n");
        assert!(lines.is_empty());
        assert_eq!(diags.list.len(), 1);
    }

    #[test]
    fn self_referencing_parameter_is_an_error_not_a_hang() {
        let (_, diags) = lines("$A=$A$A\nx $A\n");
        assert_eq!(diags.list.len(), 1, "{:?}", diags.list);
    }
}
