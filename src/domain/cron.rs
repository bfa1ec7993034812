//! A small 5-field cron evaluator (minute hour day-of-month month day-of-week) over `jiff` civil times.
//!
//! croner 3 works on chrono types, and chrono is not a direct dependency of this crate, so the schedules are
//! evaluated here instead, in the schedule's time zone with jiff's bundled tz data. Supported syntax: `*`,
//! numbers, ranges `a-b`, lists `a,b`, steps `*/n`, `a-b/n`, `a/n`, month names `JAN`–`DEC`, weekday names
//! `SUN`–`SAT` (0 and 7 are both Sunday). As in Vixie cron, when both day-of-month and day-of-week are
//! restricted a day matches if either matches.

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronSchedule {
    expr: String,
    minutes: u64,
    hours: u32,
    days: u32,
    months: u16,
    weekdays: u8,
    days_restricted: bool,
    weekdays_restricted: bool,
}

const MONTHS: [&str; 12] = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// At most this many days are scanned by one [`CronSchedule::firings_between`] call.
const MAX_SCAN_DAYS: i64 = 400;

impl CronSchedule {
    pub fn parse(expr: &str) -> Result<CronSchedule, String> {
        let fields: Vec<&str> = expr.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(format!(
                "expresión cron '{expr}': se esperan 5 campos (minuto hora día-del-mes mes día-de-la-semana), hay {}",
                fields.len()
            ));
        }
        let err = |what: &str, e: String| format!("expresión cron '{expr}', campo {what}: {e}");
        let minutes = parse_field(fields[0], 0, 59, &[]).map_err(|e| err("minuto", e))?;
        let hours = parse_field(fields[1], 0, 23, &[]).map_err(|e| err("hora", e))?;
        let days = parse_field(fields[2], 1, 31, &[]).map_err(|e| err("día del mes", e))?;
        let months = parse_field(fields[3], 1, 12, &MONTHS).map_err(|e| err("mes", e))?;
        let mut weekdays = parse_field(fields[4], 0, 7, &WEEKDAYS).map_err(|e| err("día de la semana", e))?;
        if weekdays & (1 << 7) != 0 {
            weekdays = (weekdays | 1) & !(1 << 7);
        }
        Ok(CronSchedule {
            expr: expr.trim().to_string(),
            minutes,
            hours: hours as u32,
            days: days as u32,
            months: months as u16,
            weekdays: weekdays as u8,
            days_restricted: !fields[2].starts_with('*'),
            weekdays_restricted: !fields[4].starts_with('*'),
        })
    }

    pub fn expr(&self) -> &str {
        &self.expr
    }

    fn matches_date(&self, d: Date) -> bool {
        if self.months & (1 << d.month()) == 0 {
            return false;
        }
        let dom = self.days & (1 << d.day()) != 0;
        let dow = self.weekdays & (1 << d.weekday().to_sunday_zero_offset()) != 0;
        match (self.days_restricted, self.weekdays_restricted) {
            (true, true) => dom || dow,
            (true, false) => dom,
            (false, true) => dow,
            (false, false) => true,
        }
    }

    /// The scheduled instants in `(after, until]`, in order. Local times that do not exist (a DST gap) fire at
    /// the first instant after the gap; repeated local times (a DST fold) fire once, at the earlier instant.
    pub fn firings_between(&self, tz: &TimeZone, after: Timestamp, until: Timestamp) -> Vec<Timestamp> {
        let mut out = Vec::new();
        if until <= after {
            return out;
        }
        // One day of margin on each side covers any UTC offset.
        let first = after.to_zoned(tz.clone()).date().saturating_sub(1.day());
        let last = until.to_zoned(tz.clone()).date().saturating_add(1.day());
        let mut day = first;
        let mut scanned = 0;
        while day <= last && scanned < MAX_SCAN_DAYS {
            if self.matches_date(day) {
                for h in (0..24).filter(|h| self.hours & (1 << h) != 0) {
                    for m in (0..60).filter(|m| self.minutes & (1u64 << m) != 0) {
                        let Ok(t) = Time::new(h as i8, m as i8, 0, 0) else { continue };
                        let dt = DateTime::from_parts(day, t);
                        let Ok(z) = tz.to_ambiguous_zoned(dt).compatible() else { continue };
                        let ts = z.timestamp();
                        if ts > after && ts <= until && out.last().is_none_or(|l| *l < ts) {
                            out.push(ts);
                        }
                    }
                }
            }
            match day.tomorrow() {
                Ok(d) => day = d,
                Err(_) => break,
            }
            scanned += 1;
        }
        out
    }
}

/// The scheduled instants of `expr` in `(after, until]` in `tz`.
pub fn firings_between(
    expr: &str,
    tz: &TimeZone,
    after: Timestamp,
    until: Timestamp,
) -> Result<Vec<Timestamp>, String> {
    Ok(CronSchedule::parse(expr)?.firings_between(tz, after, until))
}

fn parse_value(s: &str, names: &[&str], min: u32) -> Result<u32, String> {
    if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
        return Ok(i as u32 + min);
    }
    s.parse::<u32>().map_err(|_| format!("valor inválido '{s}'"))
}

fn parse_field(field: &str, min: u32, max: u32, names: &[&str]) -> Result<u64, String> {
    let mut bits = 0u64;
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step = s.parse::<u32>().map_err(|_| format!("paso inválido '{s}'"))?;
                if step == 0 {
                    return Err("el paso no puede ser 0".into());
                }
                (r, Some(step))
            }
            None => (part, None),
        };
        let (lo, hi) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (parse_value(a, names, min)?, parse_value(b, names, min)?)
        } else {
            let v = parse_value(range, names, min)?;
            // `a/n` means from a to the end, every n.
            (v, if step.is_some() { max } else { v })
        };
        if lo < min || hi > max || lo > hi {
            return Err(format!("'{part}' fuera del rango {min}-{max}"));
        }
        let step = step.unwrap_or(1);
        let mut v = lo;
        while v <= hi {
            bits |= 1u64 << v;
            v += step;
        }
    }
    Ok(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asu() -> TimeZone {
        TimeZone::get("America/Asuncion").unwrap()
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn strs(v: &[Timestamp]) -> Vec<String> {
        v.iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn daily_at_18_is_21_utc_in_asuncion() {
        let f = firings_between("0 18 * * *", &asu(), ts("2026-11-23T00:00:00Z"), ts("2026-11-26T00:00:00Z")).unwrap();
        assert_eq!(strs(&f), ["2026-11-23T21:00:00Z", "2026-11-24T21:00:00Z", "2026-11-25T21:00:00Z"]);
        // July too: UTC-3 all year since October 2024.
        let f = firings_between("0 18 * * *", &asu(), ts("2026-07-01T00:00:00Z"), ts("2026-07-02T00:00:00Z")).unwrap();
        assert_eq!(strs(&f), ["2026-07-01T21:00:00Z"]);
    }

    #[test]
    fn interval_is_open_at_start_and_closed_at_end() {
        let at = ts("2026-11-23T21:00:00Z");
        let f = firings_between("0 18 * * *", &asu(), at, ts("2026-11-24T20:59:00Z")).unwrap();
        assert!(f.is_empty());
        let f = firings_between("0 18 * * *", &asu(), ts("2026-11-23T20:59:59Z"), at).unwrap();
        assert_eq!(f, [at]);
        assert!(firings_between("0 18 * * *", &asu(), at, at).unwrap().is_empty());
    }

    #[test]
    fn monday_at_nine() {
        // 2026-11-23 is a Monday.
        let f = firings_between("0 9 * * 1", &asu(), ts("2026-11-20T00:00:00Z"), ts("2026-12-08T00:00:00Z")).unwrap();
        assert_eq!(strs(&f), ["2026-11-23T12:00:00Z", "2026-11-30T12:00:00Z", "2026-12-07T12:00:00Z"]);
        let named =
            firings_between("0 9 * * MON", &asu(), ts("2026-11-20T00:00:00Z"), ts("2026-12-08T00:00:00Z")).unwrap();
        assert_eq!(f, named);
    }

    #[test]
    fn sunday_is_0_and_7() {
        let a = firings_between("0 2 * * 0", &asu(), ts("2026-11-20T00:00:00Z"), ts("2026-12-01T00:00:00Z")).unwrap();
        let b = firings_between("0 2 * * 7", &asu(), ts("2026-11-20T00:00:00Z"), ts("2026-12-01T00:00:00Z")).unwrap();
        assert_eq!(strs(&a), ["2026-11-22T05:00:00Z", "2026-11-29T05:00:00Z"]);
        assert_eq!(a, b);
    }

    #[test]
    fn lists_ranges_and_steps() {
        let f = firings_between("*/20 8-9 * * 1-5", &asu(), ts("2026-11-23T00:00:00Z"), ts("2026-11-24T00:00:00Z"))
            .unwrap();
        assert_eq!(
            strs(&f),
            [
                "2026-11-23T11:00:00Z",
                "2026-11-23T11:20:00Z",
                "2026-11-23T11:40:00Z",
                "2026-11-23T12:00:00Z",
                "2026-11-23T12:20:00Z",
                "2026-11-23T12:40:00Z"
            ]
        );
        let f = firings_between("5,35 0 1 JAN,jul *", &asu(), ts("2026-01-01T00:00:00Z"), ts("2027-01-01T00:00:00Z"))
            .unwrap();
        assert_eq!(
            strs(&f),
            ["2026-01-01T03:05:00Z", "2026-01-01T03:35:00Z", "2026-07-01T03:05:00Z", "2026-07-01T03:35:00Z"]
        );
    }

    #[test]
    fn day_of_month_or_day_of_week_when_both_are_restricted() {
        // The 1st of the month, or any Sunday, in November 2026 (Sundays: 1, 8, 15, 22, 29).
        let f =
            firings_between("0 12 1,2 11 SUN", &asu(), ts("2026-11-01T00:00:00Z"), ts("2026-12-01T00:00:00Z")).unwrap();
        let days: Vec<i8> = f.iter().map(|t| t.to_zoned(asu()).day()).collect();
        assert_eq!(days, [1, 2, 8, 15, 22, 29]);
    }

    #[test]
    fn old_dst_rules_still_apply_to_old_dates() {
        // In January 2024 Asunción was on summer time, UTC-3; in July 2023 it was UTC-4.
        let f = firings_between("0 18 * * *", &asu(), ts("2023-07-01T00:00:00Z"), ts("2023-07-02T00:00:00Z")).unwrap();
        assert_eq!(strs(&f), ["2023-07-01T22:00:00Z"]);
    }

    #[test]
    fn rejects_bad_expressions() {
        for bad in [
            "",
            "0 18 * *",
            "60 * * * *",
            "0 24 * * *",
            "0 0 0 * *",
            "0 0 * 13 *",
            "*/0 * * * *",
            "a * * * *",
            "5-1 * * * *",
        ] {
            assert!(CronSchedule::parse(bad).is_err(), "{bad}");
        }
    }
}
