//! Parser for Go `text/template` syntax: text and `{{ }}` actions with `{{-`/`-}}` trimming and
//! comments; pipelines of commands over fields, variables, literals, functions and
//! parenthesised pipelines; `if`/`else if`/`else`, `range` (with `$k, $v :=`, `break`,
//! `continue`), `with`, `define`, `template`, `block`.

use std::collections::HashMap;

/// A parsed template body.
pub type List = Vec<Node>;

#[derive(Debug, Clone)]
pub enum Node {
    Text(String),
    Action(Pipe, usize),
    If(Pipe, List, Option<List>, usize),
    With(Pipe, List, Option<List>, usize),
    Range(Pipe, List, Option<List>, usize),
    Template(String, Option<Pipe>, usize),
    Break,
    Continue,
}

#[derive(Debug, Clone)]
pub struct Pipe {
    /// Variables declared (`:=`) or assigned (`=`).
    pub decl: Vec<String>,
    pub assign: bool,
    pub cmds: Vec<Vec<Arg>>,
}

#[derive(Debug, Clone)]
pub enum Arg {
    Dot,
    /// `.A.B`
    Field(Vec<String>),
    /// `$x.A.B` (`$` alone is the template's data).
    Var(String, Vec<String>),
    /// A function name.
    Ident(String),
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Nil,
    /// `( pipeline )` optionally followed by `.Field.Chain`.
    Sub(Box<Pipe>, Vec<String>),
}

/// Parse failure: message and 1-based line.
#[derive(Debug, Clone)]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

fn perr<T>(line: usize, message: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError {
        line,
        message: message.into(),
    })
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Field(Vec<String>),
    Var(String, Vec<String>),
    Str(String),
    Int(i64),
    Float(f64),
    LParen,
    RParen,
    /// `.Field` directly after `)`.
    ChainField(Vec<String>),
    Pipe,
    Declare,
    Assign,
    Comma,
    Dot,
}

enum Item {
    Text(String),
    Action(Vec<Tok>, usize),
}

/// Splits `src` into text and actions, applying trim markers and dropping comments.
fn items(src: &str) -> Result<Vec<Item>, ParseError> {
    let mut out = Vec::new();
    let mut rest = src;
    let mut line = 1;
    let mut trim_next = false;
    while !rest.is_empty() {
        let Some(open) = rest.find("{{") else {
            let mut t = rest;
            if trim_next {
                t = t.trim_start();
            }
            out.push(Item::Text(t.to_string()));
            break;
        };
        let mut text = &rest[..open];
        if trim_next {
            text = text.trim_start();
        }
        let mut inner_start = open + 2;
        let bytes = rest.as_bytes();
        let trim_left = bytes.get(open + 2) == Some(&b'-')
            && bytes.get(open + 3).is_some_and(|c| c.is_ascii_whitespace());
        if trim_left {
            text = text.trim_end();
            inner_start += 1;
        }
        out.push(Item::Text(text.to_string()));
        line += rest[..inner_start].matches('\n').count();
        let after = &rest[inner_start..];
        // Comments may contain "}}"-free text only up to "*/}}".
        let trimmed = after.trim_start();
        let close;
        if trimmed.starts_with("/*") {
            let Some(end) = after.find("*/") else {
                return perr(line, "unclosed comment");
            };
            let tail = &after[end + 2..];
            let tail_trim = tail.trim_start();
            let (trim_right, skip) = if let Some(t) = tail_trim.strip_prefix("-}}") {
                (true, tail.len() - t.len())
            } else if let Some(t) = tail_trim.strip_prefix("}}") {
                (false, tail.len() - t.len())
            } else {
                return perr(line, "comment ends before closing delimiter");
            };
            close = inner_start + end + 2 + skip;
            line += rest[inner_start..close].matches('\n').count();
            trim_next = trim_right;
            rest = &rest[close..];
            continue;
        }
        let (toks, consumed, trim_right) = lex_action(after, line)?;
        close = inner_start + consumed;
        line += rest[inner_start..close].matches('\n').count();
        out.push(Item::Action(toks, line));
        trim_next = trim_right;
        rest = &rest[close..];
    }
    Ok(out)
}

/// Lexes one action body up to and including `}}`; returns tokens, bytes consumed and whether
/// it ended with ` -}}`.
fn lex_action(s: &str, line: usize) -> Result<(Vec<Tok>, usize, bool), ParseError> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut toks = Vec::new();
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() {
            return perr(line, "unclosed action");
        }
        if b[i] == b'-' && s[i..].starts_with("-}}") && i > 0 && b[i - 1].is_ascii_whitespace() {
            return Ok((toks, i + 3, true));
        }
        if s[i..].starts_with("}}") {
            return Ok((toks, i + 2, false));
        }
        let c = b[i];
        match c {
            b'(' => {
                toks.push(Tok::LParen);
                i += 1;
            }
            b')' => {
                toks.push(Tok::RParen);
                i += 1;
                if i < b.len() && b[i] == b'.' && b.get(i + 1).is_some_and(|c| is_ident_start(*c)) {
                    let (fields, n) = lex_fields(&s[i..]);
                    toks.push(Tok::ChainField(fields));
                    i += n;
                }
            }
            b'|' => {
                toks.push(Tok::Pipe);
                i += 1;
            }
            b',' => {
                toks.push(Tok::Comma);
                i += 1;
            }
            b':' if b.get(i + 1) == Some(&b'=') => {
                toks.push(Tok::Declare);
                i += 2;
            }
            b'=' => {
                toks.push(Tok::Assign);
                i += 1;
            }
            b'"' => {
                let (v, n) = lex_quoted(&s[i..], line)?;
                toks.push(Tok::Str(v));
                i += n;
            }
            b'`' => {
                let Some(end) = s[i + 1..].find('`') else {
                    return perr(line, "unterminated raw quoted string");
                };
                toks.push(Tok::Str(s[i + 1..i + 1 + end].to_string()));
                i += end + 2;
            }
            b'.' => {
                if b.get(i + 1).is_some_and(|c| is_ident_start(*c)) {
                    let (fields, n) = lex_fields(&s[i..]);
                    toks.push(Tok::Field(fields));
                    i += n;
                } else if b.get(i + 1).is_some_and(u8::is_ascii_digit) {
                    let (t, n) = lex_number(&s[i..], line)?;
                    toks.push(t);
                    i += n;
                } else {
                    toks.push(Tok::Dot);
                    i += 1;
                }
            }
            b'$' => {
                let start = i;
                i += 1;
                while i < b.len() && is_ident_char(b[i]) {
                    i += 1;
                }
                let name = s[start..i].to_string();
                let (fields, n) = if i < b.len() && b[i] == b'.' {
                    lex_fields(&s[i..])
                } else {
                    (Vec::new(), 0)
                };
                i += n;
                toks.push(Tok::Var(name, fields));
            }
            b'0'..=b'9' | b'-' | b'+' => {
                let (t, n) = lex_number(&s[i..], line)?;
                toks.push(t);
                i += n;
            }
            b'\'' => {
                // A character constant is an integer in Go templates.
                let rest = &s[i + 1..];
                let mut chars = rest.chars();
                let ch = match chars.next() {
                    Some('\\') => match chars.next() {
                        Some('n') => '\n',
                        Some('t') => '\t',
                        Some(c) => c,
                        None => return perr(line, "unterminated character constant"),
                    },
                    Some(c) => c,
                    None => return perr(line, "unterminated character constant"),
                };
                let consumed = rest.len() - chars.as_str().len();
                if !chars.as_str().starts_with('\'') {
                    return perr(line, "unterminated character constant");
                }
                toks.push(Tok::Int(i64::from(u32::from(ch))));
                i += 1 + consumed + 1;
            }
            c if is_ident_start(c) => {
                let start = i;
                while i < b.len() && is_ident_char(b[i]) {
                    i += 1;
                }
                toks.push(Tok::Ident(s[start..i].to_string()));
            }
            _ => {
                let ch = s[i..].chars().next().unwrap_or('?');
                return perr(line, format!("unexpected {ch:?} in command"));
            }
        }
    }
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
}

fn is_ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80
}

/// `.A.B.C` -> ["A","B","C"], bytes consumed.
fn lex_fields(s: &str) -> (Vec<String>, usize) {
    let b = s.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() && b[i] == b'.' && b.get(i + 1).is_some_and(|c| is_ident_start(*c)) {
        i += 1;
        let start = i;
        while i < b.len() && is_ident_char(b[i]) {
            i += 1;
        }
        out.push(s[start..i].to_string());
    }
    (out, i)
}

fn lex_number(s: &str, line: usize) -> Result<(Tok, usize), ParseError> {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
        i += 1;
    }
    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.' || b[i] == b'_') {
        // exponent sign
        if (b[i] == b'e' || b[i] == b'E') && matches!(b.get(i + 1), Some(b'-') | Some(b'+')) {
            i += 1;
        }
        i += 1;
    }
    let text = s[..i].replace('_', "");
    if let Ok(v) = text.parse::<i64>() {
        return Ok((Tok::Int(v), i));
    }
    let (neg, digits) = match text.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, text.trim_start_matches('+')),
    };
    for (prefix, radix) in [("0x", 16), ("0X", 16), ("0o", 8), ("0b", 2)] {
        if let Some(d) = digits.strip_prefix(prefix)
            && let Ok(v) = i64::from_str_radix(d, radix)
        {
            return Ok((Tok::Int(if neg { -v } else { v }), i));
        }
    }
    if let Ok(v) = text.parse::<f64>() {
        return Ok((Tok::Float(v), i));
    }
    perr(line, format!("bad number syntax: {:?}", &s[..i]))
}

fn lex_quoted(s: &str, line: usize) -> Result<(String, usize), ParseError> {
    let mut out = String::new();
    let mut chars = s.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, i + 1)),
            '\n' => break,
            '\\' => match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 't')) => out.push('\t'),
                Some((_, 'r')) => out.push('\r'),
                Some((_, '\\')) => out.push('\\'),
                Some((_, '"')) => out.push('"'),
                Some((_, '\'')) => out.push('\''),
                Some((_, 'x')) => {
                    let h: String = chars.by_ref().take(2).map(|(_, c)| c).collect();
                    let v = u8::from_str_radix(&h, 16).map_err(|_| ParseError {
                        line,
                        message: "invalid escape in string".into(),
                    })?;
                    out.push(char::from(v));
                }
                Some((_, 'u')) => {
                    let h: String = chars.by_ref().take(4).map(|(_, c)| c).collect();
                    let v = u32::from_str_radix(&h, 16)
                        .ok()
                        .and_then(char::from_u32)
                        .ok_or_else(|| ParseError {
                            line,
                            message: "invalid escape in string".into(),
                        })?;
                    out.push(v);
                }
                _ => return perr(line, "invalid escape in string"),
            },
            c => out.push(c),
        }
    }
    perr(line, "unterminated quoted string")
}

/// Parses `src` (named `name`) into its main body and the templates it `define`s.
pub fn parse(name: &str, src: &str) -> Result<HashMap<String, List>, ParseError> {
    let items = items(src)?;
    let mut p = Parser {
        items,
        pos: 0,
        defs: HashMap::new(),
    };
    let (body, end) = p.list(0)?;
    if let Some((kw, line)) = end {
        return perr(line, format!("unexpected {{{{{kw}}}}}"));
    }
    let mut defs = std::mem::take(&mut p.defs);
    // Like Go, a body of only whitespace does not replace an existing definition.
    let only_space = body
        .iter()
        .all(|n| matches!(n, Node::Text(t) if t.trim().is_empty()));
    if !only_space || !defs.contains_key(name) {
        defs.insert(name.to_string(), body);
    }
    Ok(defs)
}

struct Parser {
    items: Vec<Item>,
    pos: usize,
    defs: HashMap<String, List>,
}

/// The keyword that ended a list (`end`, `else`), with the rest of its tokens.
type End = Option<(String, usize)>;

impl Parser {
    /// Parses nodes until `{{end}}`/`{{else ...}}` or the end of input. The `else` tokens are
    /// kept in `self.pending_else`.
    fn list(&mut self, depth: usize) -> Result<(List, End), ParseError> {
        if depth > 200 {
            return perr(0, "template nested too deeply");
        }
        let mut out = Vec::new();
        while self.pos < self.items.len() {
            let idx = self.pos;
            self.pos += 1;
            let (toks, line) = match &self.items[idx] {
                Item::Text(t) => {
                    if !t.is_empty() {
                        out.push(Node::Text(t.clone()));
                    }
                    continue;
                }
                Item::Action(toks, line) => (toks.clone(), *line),
            };
            let kw = match toks.first() {
                Some(Tok::Ident(k)) => k.as_str(),
                _ => "",
            };
            match kw {
                "end" => return Ok((out, Some(("end".into(), line)))),
                "else" => {
                    // Leave the rest of the else tokens for the caller.
                    self.items[idx] = Item::Action(toks[1..].to_vec(), line);
                    self.pos = idx;
                    return Ok((out, Some(("else".into(), line))));
                }
                "if" | "with" | "range" => {
                    let node = self.control(kw, &toks[1..], line, depth)?;
                    out.push(node);
                }
                "define" => {
                    let name = match toks.get(1) {
                        Some(Tok::Str(s)) if toks.len() == 2 => s.clone(),
                        _ => return perr(line, "define clause needs exactly one quoted name"),
                    };
                    let (body, end) = self.list(depth + 1)?;
                    match end {
                        Some((k, _)) if k == "end" => {}
                        _ => return perr(line, format!("unexpected EOF in define {name:?}")),
                    }
                    self.defs.insert(name, body);
                }
                "block" => {
                    let name = match toks.get(1) {
                        Some(Tok::Str(s)) => s.clone(),
                        _ => return perr(line, "block clause needs a quoted name"),
                    };
                    let pipe = pipe(&toks[2..], line, false)?;
                    let (body, end) = self.list(depth + 1)?;
                    match end {
                        Some((k, _)) if k == "end" => {}
                        _ => return perr(line, format!("unexpected EOF in block {name:?}")),
                    }
                    self.defs.insert(name.clone(), body);
                    out.push(Node::Template(name, Some(pipe), line));
                }
                "template" => {
                    let name = match toks.get(1) {
                        Some(Tok::Str(s)) => s.clone(),
                        _ => return perr(line, "template clause needs a quoted name"),
                    };
                    let p = if toks.len() > 2 {
                        Some(pipe(&toks[2..], line, false)?)
                    } else {
                        None
                    };
                    out.push(Node::Template(name, p, line));
                }
                "break" => out.push(Node::Break),
                "continue" => out.push(Node::Continue),
                _ => {
                    if toks.is_empty() {
                        return perr(line, "missing value for command");
                    }
                    out.push(Node::Action(pipe(&toks, line, true)?, line));
                }
            }
        }
        Ok((out, None))
    }

    fn control(
        &mut self,
        kw: &str,
        toks: &[Tok],
        line: usize,
        depth: usize,
    ) -> Result<Node, ParseError> {
        let p = pipe(toks, line, true)?;
        let (body, end) = self.list(depth + 1)?;
        let else_list = match end {
            Some((k, _)) if k == "end" => None,
            Some((k, eline)) if k == "else" => {
                // The else action's remaining tokens: empty, or `if ...`/`with ...`.
                let rest = match &self.items[self.pos] {
                    Item::Action(t, _) => t.clone(),
                    Item::Text(_) => Vec::new(),
                };
                self.pos += 1;
                match rest.first() {
                    None => {
                        let (els, end) = self.list(depth + 1)?;
                        match end {
                            Some((k, _)) if k == "end" => Some(els),
                            _ => return perr(eline, format!("expected end after else in {kw}")),
                        }
                    }
                    Some(Tok::Ident(k2)) if k2 == "if" || k2 == "with" => {
                        // `else if` chains share the outer `end`.
                        let k2 = k2.clone();
                        Some(vec![self.control(&k2, &rest[1..], eline, depth + 1)?])
                    }
                    _ => return perr(eline, "unexpected tokens after else"),
                }
            }
            _ => return perr(line, format!("unexpected EOF in {kw}")),
        };
        Ok(match kw {
            "if" => Node::If(p, body, else_list, line),
            "with" => Node::With(p, body, else_list, line),
            _ => Node::Range(p, body, else_list, line),
        })
    }
}

/// Parses a pipeline, with an optional leading declaration when `allow_decl`.
fn pipe(toks: &[Tok], line: usize, allow_decl: bool) -> Result<Pipe, ParseError> {
    let mut decl = Vec::new();
    let mut assign = false;
    let mut start = 0;
    if allow_decl {
        // `$x :=`, `$x =`, `$k, $v :=`
        let mut i = 0;
        let mut names = Vec::new();
        while let Some(Tok::Var(n, f)) = toks.get(i) {
            if !f.is_empty() {
                break;
            }
            names.push(n.clone());
            match toks.get(i + 1) {
                Some(Tok::Comma) => i += 2,
                Some(Tok::Declare) | Some(Tok::Assign) => {
                    assign = matches!(toks.get(i + 1), Some(Tok::Assign));
                    decl = names.clone();
                    start = i + 2;
                    break;
                }
                _ => break,
            }
        }
    }
    let mut cmds = Vec::new();
    let mut cur = Vec::new();
    let mut i = start;
    while i < toks.len() {
        match &toks[i] {
            Tok::Pipe => {
                if cur.is_empty() {
                    return perr(line, "missing command before |");
                }
                cmds.push(std::mem::take(&mut cur));
                i += 1;
            }
            _ => {
                let (arg, n) = operand(&toks[i..], line)?;
                cur.push(arg);
                i += n;
            }
        }
    }
    if cur.is_empty() {
        return perr(line, "missing value for command");
    }
    cmds.push(cur);
    Ok(Pipe { decl, assign, cmds })
}

fn operand(toks: &[Tok], line: usize) -> Result<(Arg, usize), ParseError> {
    let arg = match &toks[0] {
        Tok::Dot => Arg::Dot,
        Tok::Field(f) => Arg::Field(f.clone()),
        Tok::Var(n, f) => Arg::Var(n.clone(), f.clone()),
        Tok::Str(s) => Arg::Str(s.clone()),
        Tok::Int(v) => Arg::Int(*v),
        Tok::Float(v) => Arg::Float(*v),
        Tok::Ident(k) => match k.as_str() {
            "true" => Arg::Bool(true),
            "false" => Arg::Bool(false),
            "nil" => Arg::Nil,
            _ => Arg::Ident(k.clone()),
        },
        Tok::LParen => {
            let mut depth = 0;
            let mut end = None;
            for (j, t) in toks.iter().enumerate() {
                match t {
                    Tok::LParen => depth += 1,
                    Tok::RParen => {
                        depth -= 1;
                        if depth == 0 {
                            end = Some(j);
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let Some(end) = end else {
                return perr(line, "unclosed left paren");
            };
            let inner = pipe(&toks[1..end], line, false)?;
            if let Some(Tok::ChainField(f)) = toks.get(end + 1) {
                return Ok((Arg::Sub(Box::new(inner), f.clone()), end + 2));
            }
            return Ok((Arg::Sub(Box::new(inner), Vec::new()), end + 1));
        }
        t => return perr(line, format!("unexpected {t:?} in operand")),
    };
    Ok((arg, 1))
}
