//! Turning the layered values into [`Settings`], collecting every value of the wrong type instead of stopping at the
//! first. A type error names the key(s) and what is expected, never the value: a secret pasted on the wrong line of
//! a `.env` must not end up in a terminal or a log.

use config::{ConfigError as Raw, Value, ValueKind};

use super::Settings;

/// Settings with every mistyped key left at its default, and one message per mistyped key.
pub(super) struct Typed {
    pub settings: Option<Settings>,
    pub problems: Vec<String>,
}

/// Deserializes `root`; on a type error, records it, drops the key and tries again, so that every mistyped key is
/// reported. `name` spells a dotted key (`email.port`) the way the operator wrote it.
pub(super) fn deserialize(mut root: Value, name: &dyn Fn(&str) -> String) -> Typed {
    let mut problems = Vec::new();
    // Each round removes one key, so this ends; the bound only guards against a key that cannot be removed.
    for _ in 0..256 {
        let err = match root.clone().try_deserialize::<Settings>() {
            Ok(settings) => return Typed { settings: Some(settings), problems },
            Err(e) => e,
        };
        let Some(key) = error_key(&err) else {
            problems.push("a configuration value has the wrong type (the value is not shown)".into());
            break;
        };
        problems.push(format!("{}: expected {} (the value is not shown)", name(&key), expected(&key, &err)));
        if !remove(&mut root, &key) {
            break;
        }
    }
    Typed { settings: None, problems }
}

/// The dotted key of the field that failed (`rules.saldo_bajo.channels[1]` → `rules.saldo_bajo.channels`).
fn error_key(e: &Raw) -> Option<String> {
    let key = match e {
        Raw::Type { key, .. } | Raw::At { key, .. } => key.as_deref()?,
        Raw::NotFound(key) => key.as_str(),
        _ => return None,
    };
    let key = key.split('[').next().unwrap_or(key);
    (!key.is_empty()).then(|| key.to_string())
}

/// What a key takes, in words an operator can act on. Built from the type alone: config's own message quotes the
/// value.
fn expected(key: &str, e: &Raw) -> String {
    match e {
        Raw::Type { expected, .. } => expected_words(key, Some(expected)),
        // The service's own deserializers word their errors as what is expected, without the value; serde's
        // generic ones (`invalid value: string "…"`) quote it and are not shown.
        Raw::At { error, .. } => match error.as_ref() {
            Raw::Message(m) if m.starts_with("expected ") => m["expected ".len()..].to_string(),
            other => expected(key, other),
        },
        _ => expected_words(key, None),
    }
}

fn expected_words(key: &str, what: Option<&str>) -> String {
    if key == "email.port" {
        return "an integer from 1 to 65535".into();
    }
    let Some(what) = what else {
        return "a value of another form (see the configuration reference)".into();
    };
    if what == "a boolean" {
        return "true or false (also 1/0, yes/no, on/off)".into();
    }
    if what == "a floating point" {
        return "a number".into();
    }
    if what == "an unsigned 64 bit or less integer" {
        return "an integer from 0 up".into();
    }
    let bits = |prefix: &str| what.strip_prefix(prefix)?.strip_suffix(" bit integer")?.parse::<u32>().ok();
    if let Some(n) = bits("an unsigned ").filter(|n| *n <= 64) {
        return format!("an integer from 0 to {}", u64::MAX >> (64 - n));
    }
    if let Some(n) = bits("an signed ").filter(|n| (1..=64).contains(n)) {
        let max = i64::MAX >> (64 - n);
        return format!("an integer from {} to {max}", -max - 1);
    }
    what.to_string()
}

/// Removes `a.b.c` from the tree; false if it is not there.
fn remove(root: &mut Value, key: &str) -> bool {
    let mut node = root;
    let mut parts = key.split('.').peekable();
    while let Some(part) = parts.next() {
        let ValueKind::Table(table) = &mut node.kind else {
            return false;
        };
        if parts.peek().is_none() {
            return table.remove(part).is_some();
        }
        match table.get_mut(part) {
            Some(child) => node = child,
            None => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_ranges_are_spelled_out() {
        // The words config 0.15 uses for a u16, an i64, a bool.
        assert_eq!(expected_words("x", Some("an unsigned 16 bit integer")), "an integer from 0 to 65535");
        assert_eq!(
            expected_words("x", Some("an signed 64 bit integer")),
            "an integer from -9223372036854775808 to 9223372036854775807"
        );
        assert_eq!(expected_words("x", Some("a boolean")), "true or false (also 1/0, yes/no, on/off)");
        assert_eq!(expected_words("email.port", Some("an integer")), "an integer from 1 to 65535");
    }
}
