//! Logical lines → statements: a keyword, its arguments, and for a keyword followed by `{` the
//! statements of its block. Braces are structural wherever they stand (`x {`, `x{`, `{` alone
//! on the next line, `x { a b }` on one line, `} y`). Unbalanced braces are reported where
//! they are, and the tree is still built.

use super::{
    diag::{Diags, Loc},
    lexer::{Line, Token},
};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stmt {
    pub loc: Loc,
    pub keyword: String,
    pub args: Vec<Token>,
    /// Present when the keyword opened a block.
    pub block: Option<Vec<Stmt>>,
    /// Where its block ends (the line of its `}`, or where the input ended): keepalived
    /// reports what it checks at a block's end there.
    pub end: Option<Loc>,
}

impl Stmt {
    /// Argument `i` as text.
    pub fn arg(&self, i: usize) -> Option<&str> {
        self.args.get(i).map(|t| t.text.as_str())
    }

    pub fn children(&self) -> &[Stmt] {
        self.block.as_deref().unwrap_or(&[])
    }
}

struct Cursor<'a> {
    lines: &'a [Line],
    line: usize,
    token: usize,
    /// Blocks still open at the end of input.
    unclosed: usize,
    /// Blocks open around the current position.
    depth: usize,
    /// Whether the nesting limit has been reported (once per file).
    too_deep: bool,
}

/// Deepest nesting read (keepalived's deepest real nesting is 4: virtual_server → real_server
/// → checker → url). Deeper blocks are skipped without recursion, so hostile input cannot
/// exhaust the stack.
pub const MAX_NESTING: usize = 32;

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<(&'a Token, &'a Loc, bool)> {
        let line = self.lines.get(self.line)?;
        let token = line.tokens.get(self.token)?;
        Some((token, &line.loc, self.token == 0))
    }

    fn advance(&mut self) {
        self.token += 1;
        while self.line < self.lines.len() && self.token >= self.lines[self.line].tokens.len() {
            self.line += 1;
            self.token = 0;
        }
    }

    fn at_line_start(&self) -> bool {
        self.token == 0
    }
}

/// Builds the statement tree of a whole file.
pub fn build(lines: &[Line], diags: &mut Diags) -> Vec<Stmt> {
    let mut cursor = Cursor {
        lines,
        line: 0,
        token: 0,
        unclosed: 0,
        depth: 0,
        too_deep: false,
    };
    // Skip leading empty lines (the lexer drops them, but be safe).
    while cursor.line < lines.len() && lines[cursor.line].tokens.is_empty() {
        cursor.line += 1;
    }
    let mut top = Vec::new();
    loop {
        top.extend(block(&mut cursor, diags, None));
        match cursor.peek() {
            Some((t, loc, _)) if t.is("}") => {
                diags.config(Some(loc), "Extra '}' found");
                cursor.advance();
            }
            _ => break,
        }
    }
    if cursor.unclosed > 0 {
        let last = lines.last().map(|l| &l.loc);
        diags.config(
            last,
            format!("There are {} missing '}}'s or extra '{{'s", cursor.unclosed),
        );
    }
    top
}

/// Statements until a `}` that closes `opened` (left unconsumed) or the end of input.
fn block(cursor: &mut Cursor<'_>, diags: &mut Diags, opened: Option<&Loc>) -> Vec<Stmt> {
    let mut stmts = Vec::new();
    while let Some((token, loc, _)) = cursor.peek() {
        if token.is("}") {
            return stmts;
        }
        if token.is("{") {
            // A block with no keyword: keep its contents, report it.
            diags.config(Some(loc), "'{' without a keyword - ignoring its block");
            cursor.advance();
            let loc = loc.clone();
            let _ = nested(cursor, diags, &loc);
            continue;
        }
        let loc = loc.clone();
        let keyword = token.text.clone();
        let start_line = cursor.line;
        cursor.advance();
        let mut args = Vec::new();
        let mut has_block = false;
        while let Some((t, _, _)) = cursor.peek() {
            if cursor.line != start_line {
                // `{` alone at the start of the next line opens this statement's block.
                if t.is("{") && cursor.at_line_start() {
                    has_block = true;
                    cursor.advance();
                }
                break;
            }
            if t.is("{") {
                has_block = true;
                cursor.advance();
                break;
            }
            if t.is("}") {
                break;
            }
            args.push(t.clone());
            cursor.advance();
        }
        let block = if has_block {
            nested(cursor, diags, &loc)
        } else {
            None
        };
        // The cursor is just past the `}`: its line is the last one read.
        let end = has_block.then(|| {
            let at = cursor
                .line
                .min(cursor.lines.len())
                .saturating_sub(usize::from(
                    cursor.token == 0 || cursor.line >= cursor.lines.len(),
                ));
            cursor
                .lines
                .get(at)
                .map_or_else(|| loc.clone(), |l| l.loc.clone())
        });
        stmts.push(Stmt {
            loc,
            keyword,
            args,
            block,
            end,
        });
    }
    if opened.is_some() {
        // Reported once for the whole file, with the count (keepalived's wording).
        cursor.unclosed += 1;
    }
    stmts
}

/// The block just opened at `loc` (its `{` consumed), read recursively up to the nesting limit
/// and skipped beyond it.
fn nested(cursor: &mut Cursor<'_>, diags: &mut Diags, loc: &Loc) -> Option<Vec<Stmt>> {
    if cursor.depth >= MAX_NESTING {
        if !cursor.too_deep {
            cursor.too_deep = true;
            diags.config(
                Some(loc),
                format!("blocks nested deeper than {MAX_NESTING} - ignoring the inner ones"),
            );
        }
        skip(cursor);
        return None;
    }
    cursor.depth += 1;
    let inner = block(cursor, diags, Some(loc));
    cursor.depth -= 1;
    close(cursor);
    Some(inner)
}

/// Skips to just after the `}` that closes an already opened block, counting braces.
fn skip(cursor: &mut Cursor<'_>) {
    let mut open = 1usize;
    while let Some((t, _, _)) = cursor.peek() {
        if t.is("{") {
            open += 1;
        } else if t.is("}") {
            open -= 1;
            if open == 0 {
                cursor.advance();
                return;
            }
        }
        cursor.advance();
    }
    cursor.unclosed += 1;
}

/// Consumes the `}` that ends a block, if there is one (at end of input there is not).
fn close(cursor: &mut Cursor<'_>) {
    if let Some((t, _, _)) = cursor.peek()
        && t.is("}")
    {
        cursor.advance();
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::lexer::{ReadOptions, read_str};

    fn tree(text: &str) -> (Vec<Stmt>, Diags) {
        let mut diags = Diags::default();
        let lines = read_str(
            Path::new("/t/k.conf"),
            text.as_bytes(),
            &ReadOptions {
                config_id: "x".into(),
                follow_includes: true,
            },
            &mut diags,
        );
        let stmts = build(&lines, &mut diags);
        (stmts, diags)
    }

    fn shape(stmts: &[Stmt]) -> String {
        stmts
            .iter()
            .map(|s| {
                let args: Vec<&str> = s.args.iter().map(|a| a.text.as_str()).collect();
                let mut out = if args.is_empty() {
                    s.keyword.clone()
                } else {
                    format!("{} {}", s.keyword, args.join(" "))
                };
                if let Some(b) = &s.block {
                    out.push_str(&format!(" {{{}}}", shape(b)));
                }
                out
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    #[test]
    fn blocks_in_every_brace_style() {
        let (t, d) = tree("a x{\n b 1\n}\nc\n{\n d\n}\ne { f g }\nh { i { j } } k\n");
        assert_eq!(shape(&t), "a x {b 1}; c {d}; e {f g}; h {i {j}}; k");
        assert!(d.list.is_empty(), "{:?}", d.list);
    }

    #[test]
    fn stray_closing_brace_is_reported_with_its_line() {
        let (t, d) = tree("a {\n b\n}\n}\nc\n");
        assert_eq!(shape(&t), "a {b}; c");
        assert_eq!(d.list.len(), 1);
        assert_eq!(d.list[0].loc.as_ref().unwrap().line, 4);
    }

    #[test]
    fn missing_closing_brace_is_counted() {
        let (t, d) = tree("a {\n b {\n c\n}\n");
        assert_eq!(shape(&t), "a {b {c}}");
        assert_eq!(d.list.len(), 1);
        assert_eq!(d.list[0].message, "There are 1 missing '}'s or extra '{'s");
    }

    /// A block's end is the line of its `}` (keepalived reports a block's end checks there),
    /// the last line when it is never closed; a statement without a block has none.
    #[test]
    fn a_block_s_end_is_the_line_of_its_closing_brace() {
        let (stmts, _) =
            tree("a {\n  b 1\n\n  c {\n    d\n  } e\n}\nf {\n  g\n} h {\n}\nk {\n  m\n");
        let end = |s: &Stmt| s.end.as_ref().map(|l| l.line);
        assert_eq!(end(&stmts[0]), Some(7));
        let a = stmts[0].children();
        assert_eq!(end(&a[0]), None, "b has no block");
        assert_eq!(end(&a[1]), Some(6), "c closes on the line e follows");
        assert_eq!(end(&stmts[1]), Some(10));
        assert_eq!(end(&stmts[2]), Some(11), "h opens after f's brace");
        assert_eq!(end(&stmts[3]), Some(13), "never closed: the last line");
    }
}
