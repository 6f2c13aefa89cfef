//! A CronJob's schedule in plain words, for people who do not read cron: `0 2 * * *` with no
//! time zone is "every day at 02:00 UTC". The schedule and the zone are checked by the same
//! rules as the intent's CronJobs, so a preview exists exactly when the compiler accepts them.
//!
//! Shapes that have no short phrase (steps in the day fields, mixed lists and ranges of hours
//! with minute lists) are described field by field, never guessed.

use crate::plan::check::{cron_schedule, time_zone};

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const MONTH_NAMES: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// `schedule` (five cron fields or a macro such as `@daily`) in `time_zone` (an IANA name;
/// `None` is UTC, the controller's zone) as plain words, or the reason the compiler would
/// refuse it.
pub fn describe(schedule: &str, zone: Option<&str>) -> Result<String, String> {
    let schedule = schedule.trim();
    cron_schedule(schedule)?;
    if let Some(zone) = zone {
        time_zone(zone)?;
    }
    let expanded = match schedule {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        other => other,
    };
    let fields: Vec<&str> = expanded.split_whitespace().collect();
    let [minute, hour, dom, month, dow] = fields.as_slice() else {
        return Err(format!("{schedule:?} does not have five fields"));
    };
    let zone = zone.map_or_else(|| "UTC".to_owned(), |z| format!("{z} time"));
    let days = days(dom, month, dow);
    Ok(match clock(minute, hour) {
        Clock::At(times) => match days {
            None => format!("every day at {times} {zone}"),
            Some(days) => format!("{days} at {times} {zone}"),
        },
        Clock::Often(often) => match days {
            None => often,
            Some(days) => format!("{often}, {days} ({zone})"),
        },
        Clock::Hourly(often) => match days {
            None => format!("{often} ({zone})"),
            Some(days) => format!("{often}, {days} ({zone})"),
        },
    })
}

/// The time of day part.
enum Clock {
    /// At fixed clock times: "02:00", "02:00 and 14:30".
    At(String),
    /// Independent of the zone: "every minute", "every 15 minutes", "every hour at minute 5".
    Often(String),
    /// Restricted to some hours, so the zone matters: "every minute from 09:00 to 17:59".
    Hourly(String),
}

fn clock(minute: &str, hour: &str) -> Clock {
    let minutes = numbers(minute, &[]);
    let hours = numbers(hour, &[]);
    match (minute, hour) {
        ("*", "*") => return Clock::Often("every minute".into()),
        (m, "*") if step_of_all(m).is_some() => {
            let n = step_of_all(m).unwrap_or(1);
            return Clock::Often(format!("every {n} minutes"));
        }
        _ => {}
    }
    if let (Some(ms), Some(hs)) = (&minutes, &hours)
        && ms.len() * hs.len() <= 6
    {
        let times: Vec<String> = hs
            .iter()
            .flat_map(|h| ms.iter().map(move |m| format!("{h:02}:{m:02}")))
            .collect();
        return Clock::At(join_and(&times));
    }
    let at_minutes = |ms: &[u32]| match ms {
        [0] => "on the hour".to_owned(),
        [m] => format!("at minute {m}"),
        many => format!(
            "at minutes {}",
            join_and(&many.iter().map(u32::to_string).collect::<Vec<_>>())
        ),
    };
    let minute_words = match (&minutes, minute) {
        (_, "*") => "every minute".to_owned(),
        (Some(ms), _) => at_minutes(ms),
        (None, m) => match step_of_all(m) {
            Some(n) => format!("every {n} minutes"),
            None => format!("at minutes {m}"),
        },
    };
    if hour == "*" {
        return Clock::Often(if minute == "*" {
            minute_words
        } else {
            format!("every hour {minute_words}")
        });
    }
    if let Some(n) = step_of_all(hour) {
        return Clock::Hourly(format!("every {n} hours from 00:00, {minute_words}"));
    }
    if let Some((a, b)) = plain_range(hour) {
        return Clock::Hourly(format!("{minute_words} from {a:02}:00 to {b:02}:59"));
    }
    if let Some(hs) = hours {
        let listed: Vec<String> = hs.iter().map(|h| format!("{h:02}:00")).collect();
        return Clock::Hourly(format!(
            "{minute_words} in the hours starting {}",
            join_and(&listed)
        ));
    }
    Clock::Hourly(format!("{minute_words} of the hours {hour}"))
}

fn days(dom: &str, month: &str, dow: &str) -> Option<String> {
    let months = (month != "*" && month != "?").then(|| names_of(month, &MONTH_NAMES, 1, &MONTHS));
    let on_days = (dow != "*" && dow != "?").then(|| names_of(dow, &DAY_NAMES, 0, &DAYS));
    let on_dates = (dom != "*" && dom != "?").then(|| match numbers(dom, &[]) {
        Some(ds) if ds.len() == 1 => format!("day {}", ds[0]),
        Some(ds) => format!(
            "days {}",
            join_and(&ds.iter().map(u32::to_string).collect::<Vec<_>>())
        ),
        None => match plain_range(dom) {
            Some((a, b)) => format!("days {a} to {b}"),
            None => format!("days {dom}"),
        },
    });
    let of_months = months.as_deref().unwrap_or("every month");
    match (on_dates, on_days) {
        (None, None) => months.map(|m| format!("every day in {m}")),
        (Some(dates), None) => Some(format!("on {dates} of {of_months}")),
        (None, Some(days)) => Some(match &months {
            Some(m) => format!("every {days} in {m}"),
            None => format!("every {days}"),
        }),
        // Cron runs when either day field matches.
        (Some(dates), Some(days)) => Some(format!(
            "on {dates} of {of_months} and every {days}{}",
            months
                .as_deref()
                .map(|m| format!(" in {m}"))
                .unwrap_or_default()
        )),
    }
}

/// The values of a field that is a list of single values, sorted and unique.
fn numbers(field: &str, names: &[&str]) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    for part in field.split(',') {
        out.push(value(part, names, 0)?);
    }
    out.sort_unstable();
    out.dedup();
    Some(out)
}

fn value(text: &str, names: &[&str], base: u32) -> Option<u32> {
    text.parse::<u32>().ok().or_else(|| {
        names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(text))
            .and_then(|i| u32::try_from(i).ok())
            .map(|i| i + base)
    })
}

/// `*/n` (or `0/n`) as `n`.
fn step_of_all(field: &str) -> Option<u32> {
    let (all, step) = field.split_once('/')?;
    matches!(all, "*" | "0")
        .then(|| step.parse().ok())
        .flatten()
}

fn plain_range(field: &str) -> Option<(u32, u32)> {
    let (a, b) = field.split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// A month or weekday field as names: "Monday to Friday", "January and July".
fn names_of(field: &str, short: &[&str], base: u32, long: &[&str]) -> String {
    let name = |v: u32| -> Option<&str> {
        let i = usize::try_from(v.checked_sub(base)?).ok()?;
        // Day 7 is Sunday again.
        long.get(i % long.len()).copied()
    };
    let mut parts = Vec::new();
    for part in field.split(',') {
        if part.contains('/') {
            return format!("{field} (cron)");
        }
        let phrase = match part.split_once('-') {
            Some((a, b)) => value(a, short, base)
                .zip(value(b, short, base))
                .and_then(|(a, b)| Some(format!("{} to {}", name(a)?, name(b)?))),
            None => value(part, short, base).and_then(|v| name(v).map(str::to_owned)),
        };
        match phrase {
            Some(p) => parts.push(p),
            None => return format!("{field} (cron)"),
        }
    }
    join_and(&parts)
}

fn join_and(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_read_as_plain_words() {
        let cases: &[(&str, Option<&str>, &str)] = &[
            ("0 2 * * *", None, "every day at 02:00 UTC"),
            (
                "0 2 * * *",
                Some("Europe/Berlin"),
                "every day at 02:00 Europe/Berlin time",
            ),
            ("30 14 * * 1-5", None, "every Monday to Friday at 14:30 UTC"),
            ("0 0 * * 0", None, "every Sunday at 00:00 UTC"),
            ("0 0 * * 7", None, "every Sunday at 00:00 UTC"),
            (
                "0 9 * * MON,WED",
                None,
                "every Monday and Wednesday at 09:00 UTC",
            ),
            ("0 2,14 * * *", None, "every day at 02:00 and 14:00 UTC"),
            ("0 0 1 * *", None, "on day 1 of every month at 00:00 UTC"),
            (
                "0 6 1,15 * *",
                Some("Asia/Tokyo"),
                "on days 1 and 15 of every month at 06:00 Asia/Tokyo time",
            ),
            ("0 0 1 1 *", None, "on day 1 of January at 00:00 UTC"),
            ("* * * * *", None, "every minute"),
            ("*/15 * * * *", None, "every 15 minutes"),
            ("5 * * * *", None, "every hour at minute 5"),
            ("0 * * * *", None, "every hour on the hour"),
            (
                "0 */6 * * *",
                None,
                "every 6 hours from 00:00, on the hour (UTC)",
            ),
            (
                "*/5 9-17 * * 1-5",
                None,
                "every 5 minutes from 09:00 to 17:59, every Monday to Friday (UTC)",
            ),
            (
                "0 3 * 6-8 *",
                None,
                "every day in June to August at 03:00 UTC",
            ),
            (
                "15 4 1 * 1",
                None,
                "on day 1 of every month and every Monday at 04:15 UTC",
            ),
            (
                "*/10 * * * SAT,SUN",
                None,
                "every 10 minutes, every Saturday and Sunday (UTC)",
            ),
            ("@daily", None, "every day at 00:00 UTC"),
            ("@hourly", None, "every hour on the hour"),
            (
                "@weekly",
                Some("America/New_York"),
                "every Sunday at 00:00 America/New_York time",
            ),
            ("@monthly", None, "on day 1 of every month at 00:00 UTC"),
            (
                "0 12 */2 * *",
                None,
                "on days */2 of every month at 12:00 UTC",
            ),
        ];
        for (schedule, zone, words) in cases {
            assert_eq!(
                describe(schedule, *zone).as_deref(),
                Ok(*words),
                "{schedule} {zone:?}"
            );
        }
    }

    #[test]
    fn what_the_compiler_refuses_has_no_preview() {
        for (schedule, zone) in [
            ("0 25 * * *", None),
            ("every day", None),
            ("@often", None),
            ("0 2 * * *", Some("Mars/Olympus")),
            ("0 2 * * *", Some("Local")),
            ("TZ=UTC 0 2 * * *", None),
        ] {
            assert!(describe(schedule, zone).is_err(), "{schedule} {zone:?}");
        }
    }
}
