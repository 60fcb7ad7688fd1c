//! Lexing and parsing of Go template text into a tree, following `text/template/parse` (Go
//! 1.19, what Prometheus 2.42 and Alertmanager 0.25 were built with): delimiters `{{ }}` with
//! `{{- ` / ` -}}` trimming, comments, pipelines with declarations, the control structures
//! `if`/`else if`/`range`/`with`/`define`/`template`/`block`/`break`/`continue`, and parse errors
//! worded as Go words them (`template: NAME:LINE: ...`).

use std::collections::HashMap;

/// A byte offset into the template text.
pub type Pos = usize;

#[derive(Clone, Debug)]
pub(crate) enum Node {
    Text(String),
    Action(Pipe),
    If(Branch),
    Range(Branch),
    With(Branch),
    Template {
        pos: Pos,
        name: String,
        pipe: Option<Pipe>,
    },
    Break,
    Continue,
}

/// The shared shape of `if`, `range` and `with`.
#[derive(Clone, Debug)]
pub(crate) struct Branch {
    pub pipe: Pipe,
    pub list: Vec<Node>,
    pub else_list: Option<Vec<Node>>,
}

#[derive(Clone, Debug)]
pub(crate) struct Pipe {
    pub pos: Pos,
    pub end: Pos,
    pub decl: Vec<String>,
    pub is_assign: bool,
    pub cmds: Vec<Cmd>,
}

#[derive(Clone, Debug)]
pub(crate) struct Cmd {
    pub pos: Pos,
    pub end: Pos,
    pub args: Vec<Arg>,
    /// Where each argument is, for error messages.
    pub spans: Vec<Span>,
}

/// Where a node is: Go's position for it (for a chain such as `$x.a.b`, that of its first
/// `.field`) and its text.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Span {
    pub pos: Pos,
    pub start: Pos,
    pub end: Pos,
}

#[derive(Clone, Debug)]
pub(crate) enum Arg {
    /// `.A.B`
    Field(Vec<String>),
    /// `$x.A.B` (`$` alone is the root data).
    Var(String, Vec<String>),
    /// `(pipeline).A.B`
    Chain(Box<Arg>, Vec<String>),
    /// A function name.
    Ident(String),
    Dot,
    Nil,
    Bool(bool),
    Number(Number),
    Str(String),
    Pipe(Box<Pipe>),
}

/// A numeric constant, with the interpretations Go allows for it.
#[derive(Clone, Debug)]
pub(crate) struct Number {
    pub text: String,
    pub int: Option<i64>,
    pub float: Option<f64>,
    /// Whether, as an untyped constant, it is a float (has `.`, `e` or `p`, not hex int).
    pub is_float_const: bool,
}

/// A template that failed to parse; the message is Go's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

#[derive(Clone, Copy, Debug, PartialEq)]
enum Tok {
    Text,
    LeftDelim,
    RightDelim,
    Space,
    Ident,
    Keyword(Kw),
    Field,
    Var,
    Str,
    RawStr,
    Char,
    Number,
    Bool,
    Nil,
    Dot,
    Pipe,
    LParen,
    RParen,
    Declare,
    Assign,
    Comma,
    Eof,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kw {
    Block,
    Break,
    Continue,
    Define,
    Else,
    End,
    If,
    Range,
    Template,
    With,
}

#[derive(Clone, Debug)]
struct Token {
    tok: Tok,
    start: Pos,
    end: Pos,
    line: usize,
    /// For `Text`: the text after trimming.
    text: Option<String>,
}

const LEFT: &str = "{{";
const RIGHT: &str = "}}";

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

struct Lexer<'a> {
    name: &'a str,
    src: &'a str,
    pos: usize,
    line: usize,
    toks: Vec<Token>,
}

impl<'a> Lexer<'a> {
    fn err(&self, line: usize, msg: impl std::fmt::Display) -> ParseError {
        ParseError(format!("template: {}:{}: {}", self.name, line, msg))
    }

    fn push(&mut self, tok: Tok, start: Pos, end: Pos) {
        let line = self.line;
        self.line += self.src[start..end].matches('\n').count();
        self.toks.push(Token {
            tok,
            start,
            end,
            line,
            text: None,
        });
    }

    fn run(mut self) -> Result<Vec<Token>, ParseError> {
        let b = self.src.as_bytes();
        let mut trim_next_text = false;
        loop {
            // Text up to the next action.
            let rest = &self.src[self.pos..];
            let Some(off) = rest.find(LEFT) else {
                let mut t = rest.to_string();
                if trim_next_text {
                    t = t.trim_start_matches([' ', '\t', '\r', '\n']).to_string();
                }
                let start = self.pos;
                self.pos = self.src.len();
                if !t.is_empty() {
                    self.push(Tok::Text, start, self.pos);
                    if let Some(last) = self.toks.last_mut() {
                        last.text = Some(t);
                    }
                }
                let end = self.pos;
                self.push(Tok::Eof, end, end);
                return Ok(self.toks);
            };
            let delim = self.pos + off;
            let trim_left =
                b.get(delim + 2) == Some(&b'-') && b.get(delim + 3).is_some_and(|&c| is_space(c));
            let mut t = self.src[self.pos..delim].to_string();
            if trim_next_text {
                t = t.trim_start_matches([' ', '\t', '\r', '\n']).to_string();
            }
            if trim_left {
                t = t.trim_end_matches([' ', '\t', '\r', '\n']).to_string();
            }
            if !t.is_empty() {
                let start = self.pos;
                self.push(Tok::Text, start, delim);
                if let Some(last) = self.toks.last_mut() {
                    last.text = Some(t);
                }
            } else {
                self.line += self.src[self.pos..delim].matches('\n').count();
            }
            self.pos = delim + if trim_left { 3 } else { 2 };
            // A comment: `{{/* ... */}}`, possibly with trim markers.
            let after = &self.src[self.pos..];
            let ws = after.len() - after.trim_start_matches([' ', '\t', '\r', '\n']).len();
            if after[if trim_left { ws } else { 0 }..].starts_with("/*") {
                let cstart = self.pos + if trim_left { ws } else { 0 };
                let line = self.line;
                let Some(cend) = self.src[cstart + 2..].find("*/") else {
                    return Err(self.err(line, "unclosed comment"));
                };
                let mut p = cstart + 2 + cend + 2;
                self.line += self.src[self.pos..p].matches('\n').count();
                let tail = &self.src[p..];
                let (trim_right, skip) = if tail.len() >= 4
                    && is_space(tail.as_bytes()[0])
                    && tail[1..].starts_with("-}}")
                {
                    (true, 4)
                } else if tail.starts_with(RIGHT) {
                    (false, 2)
                } else {
                    return Err(self.err(line, "comment ends before closing delimiter"));
                };
                p += skip;
                self.pos = p;
                trim_next_text = trim_right;
                continue;
            }
            let start = delim;
            self.push(Tok::LeftDelim, start, self.pos);
            trim_next_text = self.lex_action()?;
        }
    }

    /// Lexes inside an action up to and including its right delimiter; returns whether it ends
    /// with ` -}}`.
    fn lex_action(&mut self) -> Result<bool, ParseError> {
        let b = self.src.as_bytes();
        let mut paren = 0i32;
        loop {
            let p = self.pos;
            let rest = &self.src[p..];
            if rest.is_empty() {
                return Err(self.err(self.line, "unclosed action"));
            }
            // ` -}}`
            if is_space(b[p]) {
                let ws_end =
                    p + rest.len() - rest.trim_start_matches([' ', '\t', '\r', '\n']).len();
                if self.src[ws_end..].starts_with("-}}") {
                    self.line += self.src[p..ws_end].matches('\n').count();
                    if paren > 0 {
                        return Err(self.err(self.line, "unclosed left paren"));
                    }
                    self.pos = ws_end + 3;
                    let s = ws_end;
                    self.push(Tok::RightDelim, s, self.pos);
                    return Ok(true);
                }
                self.pos = ws_end;
                self.push(Tok::Space, p, ws_end);
                continue;
            }
            if rest.starts_with(RIGHT) {
                if paren > 0 {
                    return Err(self.err(self.line, "unclosed left paren"));
                }
                self.pos = p + 2;
                self.push(Tok::RightDelim, p, p + 2);
                return Ok(false);
            }
            let c = rest.chars().next().unwrap_or('\0');
            let tok = match c {
                '|' => {
                    self.pos += 1;
                    Tok::Pipe
                }
                '(' => {
                    paren += 1;
                    self.pos += 1;
                    Tok::LParen
                }
                ')' => {
                    paren -= 1;
                    if paren < 0 {
                        return Err(self.err(self.line, "unexpected right paren U+0029 ')'"));
                    }
                    self.pos += 1;
                    Tok::RParen
                }
                ',' => {
                    self.pos += 1;
                    Tok::Comma
                }
                ':' => {
                    if !rest.starts_with(":=") {
                        return Err(self.err(self.line, "expected :="));
                    }
                    self.pos += 2;
                    Tok::Declare
                }
                '=' => {
                    self.pos += 1;
                    Tok::Assign
                }
                '"' => {
                    self.pos = self.quote(p, '"')?;
                    Tok::Str
                }
                '\'' => {
                    self.pos = self.quote(p, '\'')?;
                    Tok::Char
                }
                '`' => {
                    let Some(e) = self.src[p + 1..].find('`') else {
                        return Err(self.err(self.line, "unterminated raw quoted string"));
                    };
                    self.pos = p + 1 + e + 1;
                    Tok::RawStr
                }
                '$' => {
                    let n = rest[1..]
                        .find(|c: char| !is_alnum(c))
                        .unwrap_or(rest.len() - 1);
                    self.pos = p + 1 + n;
                    Tok::Var
                }
                '.' => {
                    if rest[1..].starts_with(|c: char| c.is_ascii_digit()) {
                        self.pos = self.number(p)?;
                        Tok::Number
                    } else {
                        let n = rest[1..]
                            .find(|c: char| !is_alnum(c))
                            .unwrap_or(rest.len() - 1);
                        self.pos = p + 1 + n;
                        if n == 0 { Tok::Dot } else { Tok::Field }
                    }
                }
                '+' | '-' | '0'..='9' => {
                    self.pos = self.number(p)?;
                    Tok::Number
                }
                c if is_alnum(c) => {
                    let n = rest.find(|c: char| !is_alnum(c)).unwrap_or(rest.len());
                    self.pos = p + n;
                    match &rest[..n] {
                        "block" => Tok::Keyword(Kw::Block),
                        "break" => Tok::Keyword(Kw::Break),
                        "continue" => Tok::Keyword(Kw::Continue),
                        "define" => Tok::Keyword(Kw::Define),
                        "else" => Tok::Keyword(Kw::Else),
                        "end" => Tok::Keyword(Kw::End),
                        "if" => Tok::Keyword(Kw::If),
                        "range" => Tok::Keyword(Kw::Range),
                        "template" => Tok::Keyword(Kw::Template),
                        "with" => Tok::Keyword(Kw::With),
                        "true" | "false" => Tok::Bool,
                        "nil" => Tok::Nil,
                        _ => Tok::Ident,
                    }
                }
                c => {
                    return Err(self.err(
                        self.line,
                        format!("unexpected {} in command", go_char_desc(c)),
                    ));
                }
            };
            let end = self.pos;
            self.push(tok, p, end);
        }
    }

    fn quote(&self, start: Pos, q: char) -> Result<Pos, ParseError> {
        let mut it = self.src[start + 1..].char_indices();
        while let Some((i, c)) = it.next() {
            match c {
                '\\' if it.next().is_none() => break,
                '\\' => {}
                '\n' => break,
                c if c == q => return Ok(start + 1 + i + 1),
                _ => {}
            }
        }
        Err(self.err(
            self.line,
            if q == '"' {
                "unterminated quoted string"
            } else {
                "unterminated character constant"
            },
        ))
    }

    fn number(&self, start: Pos) -> Result<Pos, ParseError> {
        let s = &self.src[start..];
        let n = s
            .char_indices()
            .skip(1)
            .find(|&(i, c)| {
                let prev = s.as_bytes()[i - 1];
                !(c.is_ascii_alphanumeric()
                    || c == '.'
                    || c == '_'
                    || ((c == '+' || c == '-') && matches!(prev, b'e' | b'E' | b'p' | b'P')))
            })
            .map_or(s.len(), |(i, _)| i);
        if n == 1 && matches!(s.as_bytes()[0], b'+' | b'-') {
            return Err(self.err(self.line, format!("bad number syntax: {:?}", &s[..1])));
        }
        Ok(start + n)
    }
}

fn go_char_desc(c: char) -> String {
    format!("<{c}>")
}

/// Parses a Go number literal the way `parse.NumberNode` does.
fn parse_number(text: &str) -> Option<Number> {
    let clean: String = text.chars().filter(|&c| c != '_').collect();
    let (neg, body) = match clean.as_bytes().first() {
        Some(b'-') => (true, &clean[1..]),
        Some(b'+') => (false, &clean[1..]),
        _ => (false, &clean[..]),
    };
    let lower = body.to_ascii_lowercase();
    let int = if let Some(h) = lower.strip_prefix("0x") {
        i64::from_str_radix(h, 16).ok()
    } else if let Some(o) = lower.strip_prefix("0o") {
        i64::from_str_radix(o, 8).ok()
    } else if let Some(bin) = lower.strip_prefix("0b") {
        i64::from_str_radix(bin, 2).ok()
    } else if lower.len() > 1 && lower.starts_with('0') && lower.bytes().all(|c| c.is_ascii_digit())
    {
        i64::from_str_radix(&lower[1..], 8).ok()
    } else {
        lower.parse::<i64>().ok()
    }
    .map(|v| if neg { -v } else { v });
    let is_hex = lower.starts_with("0x");
    let float = if let Some(i) = int {
        Some(i as f64)
    } else if !is_hex {
        lower.parse::<f64>().ok().map(|v| if neg { -v } else { v })
    } else {
        None
    };
    if int.is_none() && float.is_none() {
        return None;
    }
    let is_float_const = float.is_some() && !is_hex && clean.contains(['.', 'e', 'E', 'p', 'P']);
    Some(Number {
        text: text.to_string(),
        int: if is_float_const {
            float
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
                .map(|f| f as i64)
        } else {
            int
        },
        float,
        is_float_const,
    })
}

/// Unquotes a Go interpreted string or character literal.
pub(crate) fn unquote(lit: &str) -> Option<String> {
    let inner = &lit[1..lit.len().checked_sub(1)?];
    let mut out = String::with_capacity(inner.len());
    let mut it = inner.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next()? {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            'a' => out.push('\x07'),
            'b' => out.push('\x08'),
            'f' => out.push('\x0c'),
            'v' => out.push('\x0b'),
            '\\' => out.push('\\'),
            '"' => out.push('"'),
            '\'' => out.push('\''),
            'x' => {
                let h: String = it.by_ref().take(2).collect();
                out.push(char::from(u8::from_str_radix(&h, 16).ok()?));
            }
            'u' => {
                let h: String = it.by_ref().take(4).collect();
                out.push(char::from_u32(u32::from_str_radix(&h, 16).ok()?)?);
            }
            'U' => {
                let h: String = it.by_ref().take(8).collect();
                out.push(char::from_u32(u32::from_str_radix(&h, 16).ok()?)?);
            }
            d @ '0'..='7' => {
                let rest: String = it.by_ref().take(2).collect();
                let v = u32::from_str_radix(&format!("{d}{rest}"), 8).ok()?;
                out.push(char::from_u32(v)?);
            }
            _ => return None,
        }
    }
    Some(out)
}

/// The parsed trees of one template text: the main one under the template's name, and every
/// `define`d or `block`ed one under its own.
pub(crate) type Trees = HashMap<String, Vec<Node>>;

struct Parser<'a> {
    name: &'a str,
    src: &'a str,
    toks: Vec<Token>,
    i: usize,
    funcs: &'a dyn super::Funcs,
    /// Variables in scope (for "undefined variable" errors), as a stack.
    vars: Vec<String>,
    range_depth: usize,
    trees: Trees,
}

/// Parses `text` as template `name`; returns every tree it defines.
pub(crate) fn parse(name: &str, text: &str, funcs: &dyn super::Funcs) -> Result<Trees, ParseError> {
    let toks = Lexer {
        name,
        src: text,
        pos: 0,
        line: 1,
        toks: Vec::new(),
    }
    .run()?;
    let mut p = Parser {
        name,
        src: text,
        toks,
        i: 0,
        funcs,
        vars: vec!["$".into()],
        range_depth: 0,
        trees: Trees::new(),
    };
    let mut list = Vec::new();
    loop {
        match p.peek().tok {
            Tok::Eof => break,
            Tok::LeftDelim if p.peek_nonspace_at(1) == Tok::Keyword(Kw::Define) => {
                p.next();
                p.next_nonspace();
                p.define()?;
            }
            _ => match p.text_or_action()? {
                Item::Node(n) => list.push(n),
                Item::End(t) | Item::Else(t) => return Err(p.unexpected(&t, "input")),
            },
        }
    }
    // An empty main template does not replace a defined one of the same name (Go's IsEmptyTree).
    let empty = list
        .iter()
        .all(|n| matches!(n, Node::Text(t) if t.trim().is_empty()));
    if !(empty && p.trees.contains_key(name)) {
        p.trees.insert(name.to_string(), list);
    }
    Ok(p.trees)
}

enum Item {
    Node(Node),
    End(Token),
    Else(Token),
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        &self.toks[self.i.min(self.toks.len() - 1)]
    }

    fn peek_nonspace_at(&self, k: usize) -> Tok {
        self.toks[self.i + k..]
            .iter()
            .find(|t| t.tok != Tok::Space)
            .map_or(Tok::Eof, |t| t.tok)
    }

    fn next(&mut self) -> Token {
        let t = self.peek().clone();
        if self.i < self.toks.len() - 1 {
            self.i += 1;
        }
        t
    }

    fn next_nonspace(&mut self) -> Token {
        loop {
            let t = self.next();
            if t.tok != Tok::Space {
                return t;
            }
        }
    }

    fn peek_nonspace(&mut self) -> Token {
        let t = self.next_nonspace();
        self.i -= 1;
        t
    }

    fn text(&self, t: &Token) -> &str {
        &self.src[t.start..t.end]
    }

    fn err(&self, t: &Token, msg: impl std::fmt::Display) -> ParseError {
        ParseError(format!("template: {}:{}: {}", self.name, t.line, msg))
    }

    fn unexpected(&self, t: &Token, context: &str) -> ParseError {
        let what = match t.tok {
            Tok::Eof => "EOF".to_string(),
            Tok::RightDelim => "\"}}\"".to_string(),
            Tok::Keyword(_) => format!("<{}>", self.text(t)),
            Tok::Str | Tok::RawStr | Tok::Char => self.text(t).to_string(),
            _ => format!("{:?}", self.text(t)),
        };
        self.err(t, format!("unexpected {what} in {context}"))
    }

    fn expect(&mut self, tok: Tok, context: &str) -> Result<Token, ParseError> {
        let t = self.next_nonspace();
        if t.tok != tok {
            return Err(self.unexpected(&t, context));
        }
        Ok(t)
    }

    fn define(&mut self) -> Result<(), ParseError> {
        let t = self.next_nonspace();
        let name = match t.tok {
            Tok::Str | Tok::RawStr => self.string_lit(&t)?,
            _ => return Err(self.unexpected(&t, "define clause")),
        };
        self.expect(Tok::RightDelim, "define clause")?;
        let saved = std::mem::replace(&mut self.vars, vec!["$".into()]);
        let (list, end) = self.item_list()?;
        self.vars = saved;
        if let Item::Else(t) = end {
            return Err(self.unexpected(&t, "define clause"));
        }
        self.add_tree(&t, name, list)
    }

    fn add_tree(&mut self, at: &Token, name: String, list: Vec<Node>) -> Result<(), ParseError> {
        let empty = list
            .iter()
            .all(|n| matches!(n, Node::Text(t) if t.trim().is_empty()));
        if let Some(old) = self.trees.get(&name) {
            let old_empty = old
                .iter()
                .all(|n| matches!(n, Node::Text(t) if t.trim().is_empty()));
            if !old_empty && !empty {
                return Err(self.err(
                    at,
                    format!("template: multiple definition of template {name:?}"),
                ));
            }
            if empty {
                return Ok(());
            }
        }
        self.trees.insert(name, list);
        Ok(())
    }

    /// Parses nodes up to `{{end}}` or `{{else}}`; returns which ended the list.
    fn item_list(&mut self) -> Result<(Vec<Node>, Item), ParseError> {
        let mut list = Vec::new();
        loop {
            if self.peek().tok == Tok::Eof {
                let t = self.peek().clone();
                return Err(self.unexpected(&t, "input"));
            }
            match self.text_or_action()? {
                Item::Node(n) => list.push(n),
                end => return Ok((list, end)),
            }
        }
    }

    fn text_or_action(&mut self) -> Result<Item, ParseError> {
        let t = self.next();
        match t.tok {
            Tok::Text => Ok(Item::Node(Node::Text(t.text.clone().unwrap_or_default()))),
            Tok::LeftDelim => self.action(),
            _ => Err(self.unexpected(&t, "input")),
        }
    }

    fn action(&mut self) -> Result<Item, ParseError> {
        let t = self.peek_nonspace();
        match t.tok {
            Tok::Keyword(kw) => {
                self.next_nonspace();
                match kw {
                    Kw::Block => self.block(&t).map(Item::Node),
                    Kw::Break | Kw::Continue => {
                        if self.range_depth == 0 {
                            return Err(self.err(
                                &t,
                                format!("{{{{{}}}}} outside {{{{range}}}}", self.text(&t)),
                            ));
                        }
                        self.expect(Tok::RightDelim, self.text(&t).to_string().as_str())?;
                        Ok(Item::Node(if kw == Kw::Break {
                            Node::Break
                        } else {
                            Node::Continue
                        }))
                    }
                    Kw::Define => Err(self.unexpected(&t, "command")),
                    Kw::Else => Ok(Item::Else(t)),
                    Kw::End => {
                        self.expect(Tok::RightDelim, "end")?;
                        Ok(Item::End(t))
                    }
                    Kw::If => self.branch("if").map(|b| Item::Node(Node::If(b))),
                    Kw::Range => {
                        self.range_depth += 1;
                        let b = self.branch("range");
                        self.range_depth -= 1;
                        b.map(|b| Item::Node(Node::Range(b)))
                    }
                    Kw::With => self.branch("with").map(|b| Item::Node(Node::With(b))),
                    Kw::Template => self.template(&t).map(Item::Node),
                }
            }
            _ => {
                let pipe = self.pipeline("command", Tok::RightDelim)?;
                Ok(Item::Node(Node::Action(pipe)))
            }
        }
    }

    fn branch(&mut self, context: &str) -> Result<Branch, ParseError> {
        let depth = self.vars.len();
        let pipe = self.pipeline(context, Tok::RightDelim)?;
        let (list, end) = self.item_list()?;
        let else_list = match end {
            Item::End(_) => None,
            Item::Else(et) => {
                // `{{else if ...}}` / `{{else with ...}}` nest a branch that shares our `end`.
                let next = self.peek_nonspace();
                let chained = matches!(
                    (context, next.tok),
                    ("if", Tok::Keyword(Kw::If)) | ("with", Tok::Keyword(Kw::With))
                );
                if chained {
                    self.next_nonspace();
                    let inner = self.branch(context)?;
                    Some(vec![if context == "if" {
                        Node::If(inner)
                    } else {
                        Node::With(inner)
                    }])
                } else {
                    self.expect(Tok::RightDelim, "else")?;
                    let (else_list, end2) = self.item_list()?;
                    if let Item::Else(t) = end2 {
                        return Err(self.err(&t, "expected end; found {{else}}"));
                    }
                    let _ = et;
                    Some(else_list)
                }
            }
            Item::Node(_) => unreachable!("item_list ends on end or else"),
        };
        self.vars.truncate(depth);
        Ok(Branch {
            pipe,
            list,
            else_list,
        })
    }

    fn template(&mut self, at: &Token) -> Result<Node, ParseError> {
        let t = self.next_nonspace();
        let name = match t.tok {
            Tok::Str | Tok::RawStr => self.string_lit(&t)?,
            _ => return Err(self.unexpected(&t, "template clause")),
        };
        let pipe = if self.peek_nonspace().tok == Tok::RightDelim {
            self.next_nonspace();
            None
        } else {
            Some(self.pipeline("template clause", Tok::RightDelim)?)
        };
        Ok(Node::Template {
            pos: at.start,
            name,
            pipe,
        })
    }

    fn block(&mut self, at: &Token) -> Result<Node, ParseError> {
        let t = self.next_nonspace();
        let name = match t.tok {
            Tok::Str | Tok::RawStr => self.string_lit(&t)?,
            _ => return Err(self.unexpected(&t, "block clause")),
        };
        let pipe = self.pipeline("block clause", Tok::RightDelim)?;
        let saved = std::mem::replace(&mut self.vars, vec!["$".into()]);
        let (list, end) = self.item_list()?;
        self.vars = saved;
        if let Item::Else(t) = end {
            return Err(self.unexpected(&t, "block clause"));
        }
        self.add_tree(at, name.clone(), list)?;
        Ok(Node::Template {
            pos: at.start,
            name,
            pipe: Some(pipe),
        })
    }

    fn string_lit(&self, t: &Token) -> Result<String, ParseError> {
        let s = self.text(t);
        if t.tok == Tok::RawStr {
            return Ok(s[1..s.len() - 1].to_string());
        }
        unquote(s).ok_or_else(|| self.err(t, format!("invalid syntax: {s}")))
    }

    fn pipeline(&mut self, context: &str, end: Tok) -> Result<Pipe, ParseError> {
        let start = self.peek_nonspace();
        let mut decl = Vec::new();
        let mut is_assign = false;
        // Declarations: `$x :=`, `$x =`, `$i, $e :=` (range only).
        if start.tok == Tok::Var {
            let save = self.i;
            let v = self.next_nonspace();
            let next = self.next_nonspace();
            match next.tok {
                Tok::Declare | Tok::Assign => {
                    is_assign = next.tok == Tok::Assign;
                    let name = self.text(&v).to_string();
                    if is_assign && !self.vars.contains(&name) {
                        return Err(self.err(&v, format!("undefined variable {name:?}")));
                    }
                    decl.push(name);
                }
                Tok::Comma if context == "range" => {
                    let v2 = self.next_nonspace();
                    if v2.tok != Tok::Var {
                        return Err(self.err(&v2, "range can only initialize variables"));
                    }
                    let op = self.next_nonspace();
                    if !matches!(op.tok, Tok::Declare | Tok::Assign) {
                        return Err(self.unexpected(&op, "range"));
                    }
                    is_assign = op.tok == Tok::Assign;
                    decl.push(self.text(&v).to_string());
                    decl.push(self.text(&v2).to_string());
                }
                Tok::Comma => {
                    return Err(self.err(&next, format!("too many declarations in {context}")));
                }
                _ => self.i = save,
            }
        }
        let mut cmds = Vec::new();
        loop {
            let t = self.peek_nonspace();
            if t.tok == end {
                self.next_nonspace();
                if cmds.is_empty() {
                    return Err(self.err(&t, format!("missing value for {context}")));
                }
                break;
            }
            match t.tok {
                Tok::Bool
                | Tok::Char
                | Tok::Dot
                | Tok::Field
                | Tok::Ident
                | Tok::Number
                | Tok::Nil
                | Tok::RawStr
                | Tok::Str
                | Tok::Var
                | Tok::LParen => cmds.push(self.command()?),
                _ => return Err(self.unexpected(&t, context)),
            }
        }
        for (i, c) in cmds.iter().enumerate().skip(1) {
            if matches!(
                c.args.first(),
                Some(Arg::Bool(_) | Arg::Dot | Arg::Nil | Arg::Number(_) | Arg::Str(_))
            ) {
                return Err(self.err(
                    &start,
                    format!("non executable command in pipeline stage {}", i + 1),
                ));
            }
        }
        if !is_assign {
            for d in &decl {
                self.vars.push(d.clone());
            }
        }
        let end_pos = self.toks[self.i.saturating_sub(1)].start;
        Ok(Pipe {
            pos: start.start,
            end: end_pos,
            decl,
            is_assign,
            cmds,
        })
    }

    fn command(&mut self) -> Result<Cmd, ParseError> {
        let first = self.peek_nonspace();
        let mut args = Vec::new();
        let mut spans = Vec::new();
        loop {
            // Skip spaces between operands.
            while self.peek().tok == Tok::Space {
                self.next();
            }
            let t = self.peek().clone();
            match t.tok {
                Tok::RightDelim | Tok::RParen => break,
                Tok::Pipe => {
                    self.next();
                    break;
                }
                _ => {}
            }
            let Some((op, pos)) = self.operand()? else {
                return Err(self.unexpected(&t, "operand"));
            };
            args.push(op);
            spans.push(Span {
                pos,
                start: t.start,
                end: self.toks[self.i.saturating_sub(1)].end,
            });
            // Operands must be separated by space.
            let nt = self.peek().tok;
            if !matches!(nt, Tok::Space | Tok::RightDelim | Tok::RParen | Tok::Pipe) {
                let t = self.peek().clone();
                return Err(self.unexpected(&t, "operand"));
            }
        }
        if args.is_empty() {
            return Err(self.err(&first, "empty command"));
        }
        let end = self.toks[self.i.saturating_sub(1)].end;
        Ok(Cmd {
            pos: first.start,
            end,
            args,
            spans,
        })
    }

    /// An operand and Go's position for it.
    fn operand(&mut self) -> Result<Option<(Arg, Pos)>, ParseError> {
        let start = self.peek_nonspace().start;
        let Some(term) = self.term()? else {
            return Ok(None);
        };
        if self.peek().tok != Tok::Field {
            return Ok(Some((term, start)));
        }
        let chain_pos = self.peek().start;
        let mut idents = Vec::new();
        while self.peek().tok == Tok::Field {
            let t = self.next();
            idents.push(self.text(&t)[1..].to_string());
        }
        Ok(Some((
            match term {
                Arg::Field(mut f) => {
                    f.extend(idents);
                    Arg::Field(f)
                }
                Arg::Var(v, mut f) => {
                    f.extend(idents);
                    Arg::Var(v, f)
                }
                Arg::Bool(_) | Arg::Str(_) | Arg::Number(_) | Arg::Nil | Arg::Dot => {
                    let t = self.toks[self.i - 1].clone();
                    return Err(self.err(&t, format!("unexpected . after term {:?}", "term")));
                }
                other => Arg::Chain(Box::new(other), idents),
            },
            chain_pos,
        )))
    }

    fn term(&mut self) -> Result<Option<Arg>, ParseError> {
        let t = self.next_nonspace();
        let s = self.text(&t).to_string();
        Ok(Some(match t.tok {
            Tok::Ident => {
                if self.funcs.params(&s).is_none() && !super::builtins::is_builtin(&s) {
                    return Err(self.err(&t, format!("function {s:?} not defined")));
                }
                Arg::Ident(s)
            }
            Tok::Dot => Arg::Dot,
            Tok::Nil => Arg::Nil,
            Tok::Var => {
                if !self.vars.contains(&s) {
                    return Err(self.err(&t, format!("undefined variable {s:?}")));
                }
                Arg::Var(s, Vec::new())
            }
            Tok::Field => Arg::Field(vec![s[1..].to_string()]),
            Tok::Bool => Arg::Bool(s == "true"),
            Tok::Char => {
                let c = unquote(&s)
                    .and_then(|u| u.chars().next())
                    .ok_or_else(|| self.err(&t, format!("malformed character constant: {s}")))?;
                let v = c as i64;
                Arg::Number(Number {
                    text: s.clone(),
                    int: Some(v),
                    float: Some(v as f64),
                    is_float_const: false,
                })
            }
            Tok::Number => Arg::Number(
                parse_number(&s)
                    .ok_or_else(|| self.err(&t, format!("illegal number syntax: {s:?}")))?,
            ),
            Tok::Str | Tok::RawStr => Arg::Str(self.string_lit(&t)?),
            Tok::LParen => {
                let pipe = self.pipeline("parenthesized pipeline", Tok::RParen)?;
                Arg::Pipe(Box::new(pipe))
            }
            _ => {
                self.i -= 1;
                return Ok(None);
            }
        }))
    }
}

/// The `{{template}}` calls in `nodes`, at any depth: (position, called name).
pub(crate) fn template_calls<'a>(nodes: &'a [Node], out: &mut Vec<(Pos, &'a str)>) {
    for n in nodes {
        match n {
            Node::Template { pos, name, .. } => out.push((*pos, name)),
            Node::If(b) | Node::Range(b) | Node::With(b) => {
                template_calls(&b.list, out);
                if let Some(e) = &b.else_list {
                    template_calls(e, out);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::template::NoFuncs;

    fn err(text: &str) -> String {
        parse("t", text, &NoFuncs).unwrap_err().0
    }

    #[test]
    fn parse_errors_read_as_go_writes_them() {
        assert_eq!(
            err("{{ foo }}"),
            "template: t:1: function \"foo\" not defined"
        );
        assert_eq!(
            err("a\n{{ if . }}"),
            "template: t:2: unexpected EOF in input"
        );
        assert_eq!(err("{{ $x }}"), "template: t:1: undefined variable \"$x\"");
        assert_eq!(err("{{ end }}"), "template: t:1: unexpected <end> in input");
        assert_eq!(err("{{ . "), "template: t:1: unclosed action");
        assert_eq!(
            err("{{ \"a\" | \"b\" }}"),
            "template: t:1: non executable command in pipeline stage 2"
        );
        assert_eq!(
            err("{{ break }}"),
            "template: t:1: {{break}} outside {{range}}"
        );
    }

    #[test]
    fn numbers_keep_go_constant_kinds() {
        let n = parse_number("10").unwrap();
        assert!(!n.is_float_const && n.int == Some(10));
        let n = parse_number("1.5").unwrap();
        assert!(n.is_float_const && n.int.is_none());
        let n = parse_number("1e3").unwrap();
        assert!(n.is_float_const && n.int == Some(1000));
        assert_eq!(parse_number("0x1F").unwrap().int, Some(31));
        assert_eq!(parse_number("-7").unwrap().int, Some(-7));
    }
}
