//! Pure formatting for what operators and staff read: local times, ages, ratios and aligned tables.

use std::time::SystemTime;

use jiff::{SignedDuration, Timestamp, tz::TimeZone};

/// Text for a terminal: what the tables hold was written by the app's roles and the providers too, and an escape
/// sequence in an error or a name (`ESC]0;…`, `ESC[2J`) would drive the operator's terminal. Control characters go
/// (C0 but newline and tab, DEL, C1).
pub fn terminal_safe(s: &str) -> String {
    s.chars().filter(|c| *c == '\n' || *c == '\t' || !(c.is_control())).collect()
}

/// The time zone staff read (bundled database: the container's zoneinfo may be stale).
pub fn asuncion() -> TimeZone {
    TimeZone::get("America/Asuncion").unwrap_or(TimeZone::UTC)
}

pub fn timestamp(t: SystemTime) -> Timestamp {
    Timestamp::try_from(t).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// `dd/mm/yyyy HH:MM` in America/Asuncion.
/// A day as parents and staff read it: `23/11/2026`.
pub fn fecha(d: jiff::civil::Date) -> String {
    d.strftime("%d/%m/%Y").to_string()
}

pub fn local(t: Timestamp) -> String {
    t.to_zoned(asuncion()).strftime("%d/%m/%Y %H:%M").to_string()
}

pub fn local_opt(t: Option<Timestamp>) -> String {
    t.map(local).unwrap_or_else(|| "-".to_string())
}

/// RFC 3339 in UTC, for `--json`.
pub fn iso(t: Timestamp) -> String {
    t.to_string()
}

/// An age as people say it: `45 s`, `12 min`, `5 h 3 min`, `2 d 4 h`.
pub fn age(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86_400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

/// A share as a percentage with a decimal comma (`92,3 %`); `-` when there is nothing to divide.
pub fn percent(ratio: Option<f64>) -> String {
    match ratio {
        Some(r) => format!("{:.1} %", r * 100.0).replace('.', ","),
        None => "-".to_string(),
    }
}

/// The `--since` period as read (`24h` → `últimas 24 h`, `7d` → `últimos 7 d`).
pub fn period(d: SignedDuration) -> String {
    let s = d.as_secs();
    if s % 86_400 == 0 && s > 86_400 {
        format!("últimos {} d", s / 86_400)
    } else if s % 3600 == 0 {
        format!("últimas {} h", s / 3600)
    } else if s % 60 == 0 {
        format!("últimos {} min", s / 60)
    } else {
        format!("últimos {s} s")
    }
}

/// At most `max` characters, with `…` when cut (never splits a character).
pub fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// How a column is aligned: numbers right, text left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// An aligned text table: the header, then one line per row, columns separated by two spaces, no trailing blanks.
pub fn table(headers: &[(&str, Align)], rows: &[Vec<String>]) -> String {
    let width = |i: usize| {
        rows.iter().map(|r| r.get(i).map_or(0, |c| c.chars().count())).chain([headers[i].0.chars().count()]).max()
    };
    let widths: Vec<usize> = (0..headers.len()).map(|i| width(i).unwrap_or(0)).collect();
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let pad = widths[i].saturating_sub(cell.chars().count());
            if i > 0 {
                out.push_str("  ");
            }
            match headers[i].1 {
                Align::Left => {
                    out.push_str(cell);
                    out.push_str(&" ".repeat(pad));
                }
                Align::Right => {
                    out.push_str(&" ".repeat(pad));
                    out.push_str(cell);
                }
            }
        }
        let mut out = out.trim_end().to_string();
        out.push('\n');
        out
    };
    let mut out = line(headers.iter().map(|h| h.0).collect());
    for r in rows {
        out.push_str(&line((0..headers.len()).map(|i| r.get(i).map_or("", String::as_str)).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_never_reach_the_terminal() {
        let stored = "intento 1: \u{1b}]0;pwned\u{7}\u{1b}[2Jborrado\u{9b}31m\u{7f} fin\nsegunda\tcolumna";
        assert_eq!(terminal_safe(stored), "intento 1: ]0;pwned[2Jborrado31m fin\nsegunda\tcolumna");
    }

    #[test]
    fn local_times_are_asuncion_day_first() {
        // Paraguay has been on UTC-3 all year since October 2024.
        let t: Timestamp = "2026-11-28T17:05:59Z".parse().unwrap();
        assert_eq!(local(t), "28/11/2026 14:05");
        // Before the change, July was winter time (UTC-4): the bundled database knows.
        let t: Timestamp = "2024-07-01T12:00:00Z".parse().unwrap();
        assert_eq!(local(t), "01/07/2024 08:00");
        assert_eq!(local_opt(None), "-");
        assert_eq!(iso("2026-11-28T17:05:59Z".parse().unwrap()), "2026-11-28T17:05:59Z");
    }

    #[test]
    fn ages_and_shares_read_naturally() {
        assert_eq!(age(-5), "0 s");
        assert_eq!(age(45), "45 s");
        assert_eq!(age(12 * 60 + 59), "12 min");
        assert_eq!(age(5 * 3600 + 3 * 60), "5 h 3 min");
        assert_eq!(age(2 * 86_400 + 4 * 3600 + 59), "2 d 4 h");
        assert_eq!(percent(Some(12.0 / 13.0)), "92,3 %");
        assert_eq!(percent(Some(1.0)), "100,0 %");
        assert_eq!(percent(None), "-");
        assert_eq!(period(SignedDuration::from_hours(24)), "últimas 24 h");
        assert_eq!(period(SignedDuration::from_hours(168)), "últimos 7 d");
        assert_eq!(period(SignedDuration::from_mins(30)), "últimos 30 min");
        assert_eq!(period(SignedDuration::from_secs(90)), "últimos 90 s");
    }

    #[test]
    fn cut_marks_what_it_drops() {
        assert_eq!(cut("corto", 10), "corto");
        assert_eq!(cut("señal débil del proveedor", 8), "señal d…");
    }

    #[test]
    fn tables_align_numbers_right_and_text_left() {
        let t = table(
            &[("CANAL", Align::Left), ("ENVIADO", Align::Right), ("ÉXITO", Align::Right)],
            &[vec!["Email".into(), "12".into(), "92,3 %".into()], vec!["WhatsApp".into(), "1040".into(), "-".into()]],
        );
        assert_eq!(t, "CANAL     ENVIADO   ÉXITO\nEmail          12  92,3 %\nWhatsApp     1040       -\n");
    }
}
