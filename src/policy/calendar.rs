//! The business calendar: Japanese public holidays (国民の祝日, with 振替休日 and 国民の休日),
//! the company's own days off, the weekend and business hours, for the `outside_business_hours`
//! and `holiday` conditions and the risk score.
//!
//! Holidays follow the Act on National Holidays as amended up to 2018, with the one-off moves
//! of 2019 (the enthronement), 2020 and 2021 (the Olympics); the equinox days use the usual
//! formula, which matches the announced dates from 1980 to 2099 (the Cabinet announces each
//! year's equinox day the February before; a company can add a correction as a day off).

use std::collections::BTreeSet;

use crate::timeutil::{civil, days_from_civil, local_minute_and_weekday, weekday_of_day};

/// Which public holidays count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holidays {
    /// Japan's (the default).
    Japan,
    /// None (only the weekend and the company's days off).
    None,
}

/// The company's business calendar (`[calendar]` in the policy file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendar {
    /// Public holidays.
    pub holidays: Holidays,
    /// Business hours, minutes of the local day: `[from, to)`.
    pub hours: (u32, u32),
    /// Days of the weekend (0 = Monday).
    pub weekend: Vec<u32>,
    /// Company days off on a date (year, month, day).
    pub days_off: BTreeSet<(i64, u32, u32)>,
    /// Company days off every year (month, day): `12-29`, `01-03`.
    pub annual_days_off: BTreeSet<(u32, u32)>,
}

impl Default for Calendar {
    fn default() -> Calendar {
        Calendar {
            holidays: Holidays::Japan,
            hours: (6 * 60, 22 * 60),
            weekend: vec![5, 6],
            days_off: BTreeSet::new(),
            annual_days_off: BTreeSet::new(),
        }
    }
}

const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

impl Calendar {
    /// Why local time `secs` (at `offset_min`) is not business time, or `None` when it is.
    pub fn outside_business(&self, secs: i64, offset_min: i32) -> Option<String> {
        let (minute, weekday) = local_minute_and_weekday(secs, offset_min);
        if let Some(why) = self.day_off_at(secs, offset_min) {
            return Some(why);
        }
        if self.weekend.contains(&weekday) {
            return Some(WEEKDAYS[weekday as usize].to_string());
        }
        let (from, to) = self.hours;
        let inside = if from <= to {
            (from..to).contains(&minute)
        } else {
            minute >= from || minute < to
        };
        (!inside).then(|| {
            format!(
                "{:02}:{:02}, outside business hours {:02}:{:02}-{:02}:{:02}",
                minute / 60,
                minute % 60,
                from / 60,
                from % 60,
                to / 60,
                to % 60
            )
        })
    }

    /// A public holiday or a company day off on this local day (days since 1970-01-01): what
    /// it is.
    pub fn day_off(&self, days: i64) -> Option<String> {
        let (y, m, d) = civil(days);
        if self.days_off.contains(&(y, m, d)) || self.annual_days_off.contains(&(m, d)) {
            return Some(format!("{y:04}-{m:02}-{d:02} is a company day off"));
        }
        if self.holidays == Holidays::Japan {
            if let Some(name) = jp_holiday(y, m, d) {
                return Some(format!("{y:04}-{m:02}-{d:02} is a public holiday ({name})"));
            }
        }
        None
    }

    /// A day off (holiday or company day) at local time `secs`.
    pub fn day_off_at(&self, secs: i64, offset_min: i32) -> Option<String> {
        self.day_off((secs + i64::from(offset_min) * 60).div_euclid(86_400))
    }
}

/// Day of the month of the `n`th Monday.
fn nth_monday(y: i64, m: u32, n: u32) -> u32 {
    let first = weekday_of_day(days_from_civil(y, m, 1));
    1 + (7 - first) % 7 + 7 * (n - 1)
}

/// The equinox day of March (`base` 20.8431) or September (23.2488), in millionths.
fn equinox(y: i64, base: i64) -> u32 {
    let n = y - 1980;
    ((base + 242_194 * n).div_euclid(1_000_000) - n.div_euclid(4)) as u32
}

/// The holidays that fall on fixed rules in year `y` (before substitutes and in-between days).
fn named(y: i64) -> Vec<(u32, u32, &'static str)> {
    let mut v = vec![
        (1, 1, "元日"),
        (1, nth_monday(y, 1, 2), "成人の日"),
        (2, 11, "建国記念の日"),
        (3, equinox(y, 20_843_100), "春分の日"),
        (4, 29, "昭和の日"),
        (5, 3, "憲法記念日"),
        (5, 4, "みどりの日"),
        (5, 5, "こどもの日"),
        (9, nth_monday(y, 9, 3), "敬老の日"),
        (9, equinox(y, 23_248_800), "秋分の日"),
        (11, 3, "文化の日"),
        (11, 23, "勤労感謝の日"),
    ];
    match y {
        ..=2018 => v.push((12, 23, "天皇誕生日")),
        2019 => {
            v.push((5, 1, "天皇の即位の日"));
            v.push((10, 22, "即位礼正殿の儀の行われる日"));
        }
        _ => v.push((2, 23, "天皇誕生日")),
    }
    let (umi, yama, sports) = match y {
        2020 => ((7, 23), (8, 10), (7, 24)),
        2021 => ((7, 22), (8, 8), (7, 23)),
        _ => (
            (7, nth_monday(y, 7, 3)),
            (8, 11),
            (10, nth_monday(y, 10, 2)),
        ),
    };
    v.push((umi.0, umi.1, "海の日"));
    if y >= 2016 {
        v.push((yama.0, yama.1, "山の日"));
    }
    v.push((
        sports.0,
        sports.1,
        if y >= 2020 {
            "スポーツの日"
        } else {
            "体育の日"
        },
    ));
    v
}

/// The name of the Japanese public holiday on this date, if it is one: the named holidays, a
/// substitute holiday (振替休日: the first day after a Sunday holiday that is not a holiday)
/// and a day between two holidays (国民の休日).
pub fn jp_holiday(y: i64, m: u32, d: u32) -> Option<&'static str> {
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || !(1949..=9999).contains(&y) {
        return None;
    }
    let list = named(y);
    let named_on = |m: u32, d: u32| list.iter().find(|h| h.0 == m && h.1 == d).map(|h| h.2);
    if let Some(n) = named_on(m, d) {
        return Some(n);
    }
    let day = days_from_civil(y, m, d);
    let named_day = |days: i64| {
        let (yy, mm, dd) = civil(days);
        if yy == y {
            named_on(mm, dd).is_some()
        } else {
            named(yy).iter().any(|h| h.0 == mm && h.1 == dd)
        }
    };
    // 振替休日: walk back over named holidays to a Sunday one.
    let mut back = day - 1;
    while named_day(back) {
        if weekday_of_day(back) == 6 {
            return Some("振替休日");
        }
        back -= 1;
    }
    // 国民の休日: a weekday (not Sunday) between two named holidays.
    if weekday_of_day(day) != 6 && named_day(day - 1) && named_day(day + 1) {
        return Some("国民の休日");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holidays(y: i64) -> Vec<String> {
        let mut out = Vec::new();
        let mut day = days_from_civil(y, 1, 1);
        while civil(day).0 == y {
            let (_, m, d) = civil(day);
            if let Some(n) = jp_holiday(y, m, d) {
                out.push(format!("{m:02}-{d:02} {n}"));
            }
            day += 1;
        }
        out
    }

    #[test]
    fn japanese_holidays_of_known_years() {
        // The Cabinet Office's lists (内閣府「国民の祝日について」).
        assert_eq!(
            holidays(2026),
            [
                "01-01 元日",
                "01-12 成人の日",
                "02-11 建国記念の日",
                "02-23 天皇誕生日",
                "03-20 春分の日",
                "04-29 昭和の日",
                "05-03 憲法記念日",
                "05-04 みどりの日",
                "05-05 こどもの日",
                "05-06 振替休日",
                "07-20 海の日",
                "08-11 山の日",
                "09-21 敬老の日",
                "09-22 国民の休日",
                "09-23 秋分の日",
                "10-12 スポーツの日",
                "11-03 文化の日",
                "11-23 勤労感謝の日",
            ]
        );
        let y2025 = holidays(2025);
        for d in [
            "02-24 振替休日",
            "05-06 振替休日",
            "11-24 振替休日",
            "09-23 秋分の日",
            "03-20 春分の日",
        ] {
            assert!(y2025.contains(&d.to_string()), "2025 {d}: {y2025:?}");
        }
        assert_eq!(y2025.len(), 19);
        let y2019 = holidays(2019);
        for d in [
            "04-30 国民の休日",
            "05-01 天皇の即位の日",
            "05-02 国民の休日",
            "05-06 振替休日",
            "10-22 即位礼正殿の儀の行われる日",
            "10-14 体育の日",
        ] {
            assert!(y2019.contains(&d.to_string()), "2019 {d}: {y2019:?}");
        }
        assert!(!y2019.iter().any(|h| h.contains("天皇誕生日")));
        let y2020 = holidays(2020);
        for d in [
            "07-23 海の日",
            "07-24 スポーツの日",
            "08-10 山の日",
            "02-24 振替休日",
        ] {
            assert!(y2020.contains(&d.to_string()), "2020 {d}: {y2020:?}");
        }
        let y2021 = holidays(2021);
        for d in [
            "07-22 海の日",
            "07-23 スポーツの日",
            "08-08 山の日",
            "08-09 振替休日",
        ] {
            assert!(y2021.contains(&d.to_string()), "2021 {d}: {y2021:?}");
        }
        assert!(holidays(2024).contains(&"09-23 振替休日".to_string()));
        assert_eq!(jp_holiday(2026, 13, 1), None);
        assert_eq!(jp_holiday(2026, 2, 30), None);
    }

    #[test]
    fn business_time_names_why_not() {
        let mut c = Calendar {
            hours: (9 * 60, 18 * 60),
            ..Calendar::default()
        };
        c.annual_days_off.insert((12, 29));
        c.days_off.insert((2026, 12, 7));
        let at = |y, m, d, h: i64| days_from_civil(y, m, d) * 86_400 + h * 3600 - 9 * 3600;
        assert_eq!(c.outside_business(at(2026, 12, 4, 10), 540), None); // a Friday
        assert!(c
            .outside_business(at(2026, 12, 4, 20), 540)
            .unwrap()
            .contains("20:00, outside business hours 09:00-18:00"));
        assert_eq!(
            c.outside_business(at(2026, 12, 5, 10), 540).as_deref(),
            Some("Saturday")
        );
        assert!(c
            .outside_business(at(2026, 11, 23, 10), 540)
            .unwrap()
            .contains("勤労感謝の日"));
        assert!(c
            .outside_business(at(2026, 12, 29, 10), 540)
            .unwrap()
            .contains("company day off"));
        assert!(c
            .outside_business(at(2027, 12, 29, 10), 540)
            .unwrap()
            .contains("company day off"));
        assert!(c
            .outside_business(at(2026, 12, 7, 10), 540)
            .unwrap()
            .contains("company day off"));
        assert_eq!(c.outside_business(at(2026, 12, 8, 10), 540), None);
        c.holidays = Holidays::None;
        assert_eq!(c.outside_business(at(2026, 11, 23, 10), 540), None);
        // Hours across midnight (a night shift).
        c.hours = (22 * 60, 6 * 60);
        assert_eq!(c.outside_business(at(2026, 12, 8, 23), 540), None);
        assert!(c.outside_business(at(2026, 12, 8, 12), 540).is_some());
    }
}
