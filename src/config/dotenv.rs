//! The `.env` file, read as python-decouple 3.8 reads it (`RepositoryEnv`), because the Cantina team's Django
//! settings read the same file with decouple: for each line, strip it; skip it if empty, a `#` comment or without
//! `=`; split at the first `=`; strip key and value; drop one pair of matching quotes around the value. Nothing else:
//! no escapes, no variable expansion, and a `#` after the value is part of the value (decouple keeps it).
//! One deliberate difference: `export NAME=value` is read as `NAME` (the shell's reading; decouple would keep a key
//! named `export NAME`, which nothing can ask for). A UTF-8 byte-order mark at the start is ignored.
//!
//! A line of a `.env` is likely to hold a secret, so errors name the file and the 1-based line, never its text.

use std::collections::HashMap;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum DotEnvError {
    #[error("cannot read .env file {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error(".env file {path}, line {line}: not valid UTF-8 (save the file as UTF-8; the line's content is not shown)")]
    NotUtf8 { path: String, line: usize },
}

/// Reads `path` into a map; a key given twice keeps its last value (as decouple does).
pub fn read(path: &Path) -> Result<HashMap<String, String>, DotEnvError> {
    let bytes = std::fs::read(path).map_err(|source| DotEnvError::Io { path: path.display().to_string(), source })?;
    parse(&bytes).map_err(|line| DotEnvError::NotUtf8 { path: path.display().to_string(), line })
}

/// Parses a `.env` file's bytes; `Err(n)` is the 1-based number of the first line that is not UTF-8.
pub fn parse(bytes: &[u8]) -> Result<HashMap<String, String>, usize> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut vars = HashMap::new();
    for (index, raw) in lines(bytes).enumerate() {
        let line = std::str::from_utf8(raw).map_err(|_| index + 1)?;
        if let Some((key, value)) = parse_line(line) {
            vars.insert(key.to_string(), value.to_string());
        }
    }
    Ok(vars)
}

/// Python's universal newlines (how decouple iterates over the file): `\n`, `\r\n` and a lone `\r` end a line.
fn lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(bytes);
    std::iter::from_fn(move || {
        let current = rest?;
        match current.iter().position(|b| *b == b'\n' || *b == b'\r') {
            Some(end) => {
                let skip = if current[end] == b'\r' && current.get(end + 1) == Some(&b'\n') { 2 } else { 1 };
                let after = &current[end + skip..];
                // A final line ending does not start another (empty) line.
                rest = (!after.is_empty()).then_some(after);
                Some(&current[..end])
            }
            None => {
                rest = None;
                Some(current)
            }
        }
    })
}

fn parse_line(line: &str) -> Option<(&str, &str)> {
    let line = strip(line);
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (key, value) = line.split_once('=')?;
    let key = strip(key);
    let key =
        key.strip_prefix("export").filter(|rest| rest.starts_with(is_python_space)).map_or(key, |rest| strip(rest));
    let value = strip(value);
    // One pair of matching quotes (a lone `"` is not a pair: it stays).
    let value = ['"', '\''].iter().find_map(|q| value.strip_prefix(*q)?.strip_suffix(*q)).unwrap_or(value);
    Some((key, value))
}

/// Python's `str.strip()` with no argument.
fn strip(s: &str) -> &str {
    s.trim_matches(is_python_space)
}

/// Python's `str.isspace()`: Unicode White_Space plus the four information separators U+001C..U+001F.
fn is_python_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(text: &str) -> HashMap<String, String> {
        parse(text.as_bytes()).unwrap()
    }

    #[test]
    fn lines_are_read_as_decouple_reads_them() {
        let m = map(concat!(
            "\u{feff}# comment\n",
            "  \n",
            "no equals sign here\n",
            "A = spaced value \r\n",
            "B=\"double\"\rC='single'\n",
            "D=\"unbalanced'\n",
            "E=\"\n",
            "F=a=b=c\n",
            "G=x # kept\n",
            "export H=exported\n",
            "exporter=kept as is\n",
            "I=''\n",
            "I=last wins\n",
            "\u{1f}J\u{a0}=\u{1c}v\u{3000}\n",
            "K=\"inner \"quotes\" kept\""
        ));
        let expected: HashMap<String, String> = [
            ("A", "spaced value"),
            ("B", "double"),
            ("C", "single"),
            ("D", "\"unbalanced'"),
            ("E", "\""),
            ("F", "a=b=c"),
            ("G", "x # kept"),
            ("H", "exported"),
            ("exporter", "kept as is"),
            ("I", "last wins"),
            ("J", "v"),
            ("K", "inner \"quotes\" kept"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(m, expected);
    }

    #[test]
    fn an_empty_quoted_value_is_empty() {
        assert_eq!(map("A=\"\"\nB=''\n")["A"], "");
        assert_eq!(map("B=''")["B"], "");
    }

    #[test]
    fn invalid_utf8_names_the_1_based_line_and_not_its_text() {
        assert_eq!(parse(b"A=1\r\nB=2\r\nEMAIL_HOST_PASSWORD=p\xe1ss-s3cret\r\n"), Err(3));
        assert_eq!(parse(b"\xff=1\n"), Err(1));
        let dir = std::env::temp_dir().join(format!("cn-dotenv-{}", fastrand::u64(..)));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(".env");
        std::fs::write(&path, b"# x\nEMAIL_HOST_PASSWORD=p\xe1ss-s3cret\n").unwrap();
        let err = read(&path).unwrap_err().to_string();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(err.contains("line 2") && err.contains(".env"), "{err}");
        assert!(!err.contains("s3cret") && !err.contains("EMAIL_HOST_PASSWORD"), "{err}");
    }
}
