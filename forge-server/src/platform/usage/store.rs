//! The counts not yet written: per hour, per project, fixed arrays for the request path and
//! small maps for everything else. Only [`super::Meter`] touches it, under its mutex.

use std::collections::{BTreeMap, HashMap};

use forge_core::ProjectRef;

use super::{EGRESS_BYTES, REQUESTS, ServiceKind, StatusClass};

/// How a stored value combines with what is already in its hourly row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// Added: requests, bytes, messages.
    Counter,
    /// The largest value of the hour: sizes, peaks, monthly active users.
    Gauge,
}

impl Kind {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// Everything counted since the last flush, by hour (almost always one hour; two across the
/// turn of an hour, more only while the database is unreachable).
#[derive(Debug, Default)]
pub(super) struct Pending {
    hours: Vec<HourCounts>,
}

#[derive(Debug)]
struct HourCounts {
    /// The hour's start, in seconds since the epoch.
    hour: i64,
    projects: HashMap<ProjectRef, ProjectCounts>,
}

/// One project's counts in one hour.
#[derive(Debug, Default)]
pub(super) struct ProjectCounts {
    pub(super) requests: [[u64; StatusClass::COUNT]; ServiceKind::COUNT],
    pub(super) egress: [u64; ServiceKind::COUNT],
    counters: HashMap<Box<str>, HashMap<Box<str>, u64>>,
    gauges: HashMap<Box<str>, HashMap<Box<str>, i64>>,
}

/// Runs `f` on the value under `key`, inserting a default first if there is none. The key is
/// copied only when it is new, so counting an existing key allocates nothing.
fn update<V: Default, R>(map: &mut HashMap<Box<str>, V>, key: &str, f: impl FnOnce(&mut V) -> R) -> R {
    if let Some(value) = map.get_mut(key) {
        return f(value);
    }
    f(map.entry(key.into()).or_default())
}

impl ProjectCounts {
    pub(super) fn add(&mut self, metric: &str, dimension: &str, n: u64) {
        update(&mut self.counters, metric, |dims| update(dims, dimension, |v: &mut u64| *v = v.saturating_add(n)));
    }

    pub(super) fn gauge(&mut self, metric: &str, dimension: &str, value: i64) {
        update(&mut self.gauges, metric, |dims| {
            if let Some(v) = dims.get_mut(dimension) {
                *v = (*v).max(value);
            } else {
                dims.insert(dimension.into(), value);
            }
        });
    }
}

impl Pending {
    /// Runs `f` on `reference`'s counts for `hour`.
    pub(super) fn with<R>(&mut self, hour: i64, reference: &ProjectRef, f: impl FnOnce(&mut ProjectCounts) -> R) -> R {
        let index = match self.hours.iter().rposition(|b| b.hour == hour) {
            Some(i) => i,
            None => {
                self.hours.push(HourCounts { hour, projects: HashMap::new() });
                self.hours.len() - 1
            }
        };
        let projects = &mut self.hours[index].projects;
        if let Some(counts) = projects.get_mut(reference.as_str()) {
            return f(counts);
        }
        f(projects.entry(reference.clone()).or_default())
    }

    pub(super) fn is_empty(&self) -> bool {
        self.hours.is_empty()
    }

    /// The rows to write, one per (ref, hour, metric, dimension), sorted by that key so that
    /// nodes upserting overlapping rows at once take their row locks in the same order.
    pub(super) fn rows(&self) -> Rows {
        let mut sorted: BTreeMap<(&str, i64, &str, String), (Kind, i64)> = BTreeMap::new();
        for bucket in &self.hours {
            for (reference, counts) in &bucket.projects {
                let reference = reference.as_str();
                for service in ServiceKind::ALL {
                    for class in StatusClass::ALL {
                        let n = counts.requests[service as usize][class as usize];
                        if n > 0 {
                            merge_row(
                                &mut sorted,
                                (reference, bucket.hour, REQUESTS, format!("{}:{}", service.as_str(), class.as_str())),
                                Kind::Counter,
                                to_i64(n),
                            );
                        }
                    }
                    let n = counts.egress[service as usize];
                    if n > 0 {
                        merge_row(
                            &mut sorted,
                            (reference, bucket.hour, EGRESS_BYTES, service.as_str().to_owned()),
                            Kind::Counter,
                            to_i64(n),
                        );
                    }
                }
                for (metric, dims) in &counts.counters {
                    for (dimension, &n) in dims {
                        if n > 0 {
                            let key = (reference, bucket.hour, &**metric, dimension.to_string());
                            merge_row(&mut sorted, key, Kind::Counter, to_i64(n));
                        }
                    }
                }
                for (metric, dims) in &counts.gauges {
                    for (dimension, &value) in dims {
                        let key = (reference, bucket.hour, &**metric, dimension.to_string());
                        merge_row(&mut sorted, key, Kind::Gauge, value);
                    }
                }
            }
        }
        let mut rows = Rows::default();
        for ((reference, hour, metric, dimension), (kind, value)) in sorted {
            rows.refs.push(reference.to_owned());
            rows.hours.push(hour);
            rows.metrics.push(metric.to_owned());
            rows.dimensions.push(dimension);
            rows.kinds.push(kind.as_str());
            rows.values.push(value);
        }
        rows
    }
}

/// Two counts for one row (say `count("requests", "rest:2xx")` beside the layer's own): a
/// counter adds, a gauge keeps the larger; the first kind seen wins.
fn merge_row<'a>(
    sorted: &mut BTreeMap<(&'a str, i64, &'a str, String), (Kind, i64)>,
    key: (&'a str, i64, &'a str, String),
    kind: Kind,
    value: i64,
) {
    sorted
        .entry(key)
        .and_modify(|(k, v)| {
            *v = match k {
                Kind::Counter => v.saturating_add(value),
                Kind::Gauge => (*v).max(value),
            }
        })
        .or_insert((kind, value));
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Rows as column arrays, bound to one `unnest` upsert.
#[derive(Debug, Default)]
pub(super) struct Rows {
    pub(super) refs: Vec<String>,
    pub(super) hours: Vec<i64>,
    pub(super) metrics: Vec<String>,
    pub(super) dimensions: Vec<String>,
    pub(super) kinds: Vec<&'static str>,
    pub(super) values: Vec<i64>,
}
