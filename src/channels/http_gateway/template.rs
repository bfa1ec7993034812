//! The gateway's template mini-language: field values such as `to={to_local}` or `Bearer {api_key}`, parsed
//! once at start-up (an unknown placeholder is refused there) and rendered per request.

use crate::domain::MobilePhone;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Var {
    To,
    ToLocal,
    ToDigits,
    Message,
    ApiKey,
    Id,
}

impl Var {
    const ALL: [(&'static str, Var); 6] = [
        ("to", Var::To),
        ("to_local", Var::ToLocal),
        ("to_digits", Var::ToDigits),
        ("message", Var::Message),
        ("api_key", Var::ApiKey),
        ("id", Var::Id),
    ];
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Piece {
    Text(String),
    Var(Var),
}

/// A parsed template: literal text and placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Template(Vec<Piece>);

impl Template {
    pub(super) fn parse(s: &str) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    text.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    text.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(ch) => name.push(ch),
                            None => {
                                return Err(format!("'{{{name}' is not closed with '}}' (write '{{{{' for a brace)"));
                            }
                        }
                    }
                    let Some((_, var)) = Var::ALL.iter().find(|(n, _)| *n == name.trim()) else {
                        let known: Vec<String> = Var::ALL.iter().map(|(n, _)| format!("{{{n}}}")).collect();
                        return Err(format!("unknown placeholder {{{name}}} (expected one of {})", known.join(", ")));
                    };
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(Piece::Var(*var));
                }
                other => text.push(other),
            }
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(Self(pieces))
    }

    pub(super) fn uses(&self, var: Var) -> bool {
        self.0.contains(&Piece::Var(var))
    }

    pub(super) fn render(&self, v: &Values<'_>) -> String {
        let mut out = String::new();
        for p in &self.0 {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Var(Var::To) => out.push_str(v.to),
                Piece::Var(Var::ToLocal) => out.push_str(&v.to_local),
                Piece::Var(Var::ToDigits) => out.push_str(&v.to_digits),
                Piece::Var(Var::Message) => out.push_str(v.message),
                Piece::Var(Var::ApiKey) => out.push_str(v.api_key),
                Piece::Var(Var::Id) => out.push_str(v.id),
            }
        }
        out
    }
}

/// What the placeholders stand for in one request.
pub(super) struct Values<'a> {
    to: &'a str,
    to_local: String,
    to_digits: String,
    message: &'a str,
    api_key: &'a str,
    id: &'a str,
}

impl<'a> Values<'a> {
    pub(super) fn new(phone: &'a MobilePhone, message: &'a str, api_key: &'a str, id: &'a str) -> Self {
        let to = phone.as_str();
        Self { to, to_local: local_digits(to), to_digits: e164_digits(to), message, api_key, id }
    }
}

pub(super) fn e164_digits(e164: &str) -> String {
    e164.chars().filter(char::is_ascii_digit).collect()
}

/// The national form's digits: `+595981123456` → `0981123456` (the country's trunk prefix included).
pub(super) fn local_digits(e164: &str) -> String {
    match phonenumber::parse(None, e164) {
        Ok(n) => {
            n.format().mode(phonenumber::Mode::National).to_string().chars().filter(char::is_ascii_digit).collect()
        }
        Err(_) => match e164.strip_prefix("+595") {
            Some(rest) => format!("0{rest}"),
            None => e164_digits(e164),
        },
    }
}
