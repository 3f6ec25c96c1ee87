//! A period's figures for one dimension, from its daily rollups: the JSON and CSV answers of
//! `GET /admin/v1/analytics` and `GET /api/v1/me/analytics`.

use serde::Serialize;

use super::recorder::day_key;
use super::rollup::{count, median, percentile, rate, Rollup};
use super::Dimension;
use crate::domain::clock::format_day;
use crate::storage::codec::decode;
use crate::storage::items::ItemKind;
use crate::storage::{Store, StoreResult};

/// The longest period one report covers, in days (two years, the retention the plan names).
pub const MAX_DAYS: i64 = 731;

/// Days `from..=to` (day numbers, UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub from: i64,
    pub to: i64,
}

/// The rollups stored for `dim` in the period, in day order (days with nothing are absent).
pub async fn read_days(
    store: &dyn Store,
    dim: &Dimension,
    period: Period,
) -> StoreResult<Vec<(i64, Rollup)>> {
    let partition = dim.partition();
    let mut out = Vec::new();
    // The item just before `from` is where listing starts; it lists after it.
    let mut after = day_key(period.from - 1);
    loop {
        let page = store
            .list_items(ItemKind::AnalyticsDay, &partition, Some(&after), 100)
            .await?;
        let full = page.len() == 100;
        for item in page {
            let Ok(bytes) = <[u8; 8]>::try_from(item.key.as_slice()) else {
                continue;
            };
            let day = (u64::from_be_bytes(bytes) ^ (1 << 63)) as i64;
            if day > period.to {
                return Ok(out);
            }
            out.push((day, decode(&item.value)?));
            after = item.key;
        }
        if !full {
            return Ok(out);
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Report {
    #[schema(format = Date)]
    pub from: String,
    #[schema(format = Date)]
    pub to: String,
    pub adoption: Adoption,
    pub response_time: ResponseTime,
    pub conversion: Conversion,
    pub delivery_time: DeliveryTime,
    /// The same figures per day, for graphs; days with no activity are left out.
    pub days: Vec<Day>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Adoption {
    pub contact_views: u64,
    pub conversations: u64,
    /// Conversations per contact view.
    pub rate: Option<f64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ResponseTime {
    pub samples: u64,
    pub median_seconds: Option<f64>,
    pub p90_seconds: Option<u64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Conversion {
    pub conversations: u64,
    pub outcomes: u64,
    pub booked: u64,
    /// Booked conversations per conversation created in the period.
    pub rate: Option<f64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryTime {
    pub samples: u64,
    pub p50_ms: Option<u64>,
    pub p99_ms: Option<u64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Day {
    #[schema(format = Date)]
    pub date: String,
    pub adoption: Adoption,
    pub response_time: ResponseTime,
    pub conversion: Conversion,
    pub delivery_time: DeliveryTime,
}

fn figures(r: &Rollup) -> (Adoption, ResponseTime, Conversion, DeliveryTime) {
    (
        Adoption {
            contact_views: r.views,
            conversations: r.conversations,
            rate: rate(r.conversations, r.views),
        },
        ResponseTime {
            samples: count(&r.responses),
            median_seconds: median(&r.responses),
            p90_seconds: percentile(&r.responses, 90),
        },
        Conversion {
            conversations: r.conversations,
            outcomes: r.outcomes,
            booked: r.booked,
            rate: rate(r.booked, r.conversations),
        },
        DeliveryTime {
            samples: count(&r.deliveries),
            p50_ms: percentile(&r.deliveries, 50),
            p99_ms: percentile(&r.deliveries, 99),
        },
    )
}

pub fn build(period: Period, days: &[(i64, Rollup)]) -> Report {
    let mut total = Rollup::default();
    let mut per_day = Vec::with_capacity(days.len());
    for (day, r) in days {
        total.merge(r);
        let (adoption, response_time, conversion, delivery_time) = figures(r);
        per_day.push(Day {
            date: format_day(*day),
            adoption,
            response_time,
            conversion,
            delivery_time,
        });
    }
    let (adoption, response_time, conversion, delivery_time) = figures(&total);
    Report {
        from: format_day(period.from),
        to: format_day(period.to),
        adoption,
        response_time,
        conversion,
        delivery_time,
        days: per_day,
    }
}

/// The report as CSV: a header, one row per day, and a `total` row.
pub fn csv(report: &Report) -> String {
    let mut out = String::from(
        "date,contact_views,conversations,adoption_rate,responses,response_median_seconds,\
         response_p90_seconds,outcomes,booked,conversion_rate,deliveries,delivery_p50_ms,\
         delivery_p99_ms\n",
    );
    let rows = report
        .days
        .iter()
        .map(|d| {
            (
                d.date.as_str(),
                &d.adoption,
                &d.response_time,
                &d.conversion,
                &d.delivery_time,
            )
        })
        .chain(std::iter::once((
            "total",
            &report.adoption,
            &report.response_time,
            &report.conversion,
            &report.delivery_time,
        )));
    for (date, a, r, c, d) in rows {
        let cells = [
            date.to_string(),
            a.contact_views.to_string(),
            a.conversations.to_string(),
            opt(a.rate),
            r.samples.to_string(),
            opt(r.median_seconds),
            opt(r.p90_seconds),
            c.outcomes.to_string(),
            c.booked.to_string(),
            opt(c.rate),
            d.samples.to_string(),
            opt(d.p50_ms),
            opt(d.p99_ms),
        ];
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

/// An empty cell for a figure that does not exist (no samples).
fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_totals_its_days_and_the_csv_has_a_row_per_day_and_a_total() {
        let mut a = Rollup {
            views: 4,
            conversations: 2,
            outcomes: 2,
            booked: 1,
            ..Rollup::default()
        };
        a.add_response(60_000);
        a.add_response(120_000);
        let mut b = Rollup {
            views: 1,
            conversations: 1,
            ..Rollup::default()
        };
        b.add_response(300_000);
        b.add_delivery(15);
        let report = build(Period { from: 10, to: 12 }, &[(10, a), (12, b)]);
        assert_eq!(report.adoption.contact_views, 5);
        assert_eq!(report.adoption.rate, Some(0.6));
        assert_eq!(report.response_time.median_seconds, Some(120.0));
        assert_eq!(report.response_time.p90_seconds, Some(300));
        assert_eq!(report.conversion.rate, Some(1.0 / 3.0));
        assert_eq!(report.delivery_time.p99_ms, Some(15));
        assert_eq!(report.days.len(), 2);
        let csv = csv(&report);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 4, "{csv}");
        assert!(
            lines[1].starts_with("1970-01-11,4,2,0.5,2,90,120,2,1,0.5,0,,"),
            "{csv}"
        );
        assert!(
            lines[3].starts_with("total,5,3,0.6,3,120,300,2,1,"),
            "{csv}"
        );
    }
}
