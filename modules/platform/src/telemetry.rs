//! Logs and metrics set up once per process.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{LogFormat, LogSettings, TraceSettings};
use crate::trace::Exporter;

/// Installs the tracing subscriber: log lines human-readable by default, JSON lines when
/// configured, and spans exported over OTLP when `traces` turn them on (see [`crate::trace`]);
/// `service` names the process in traces. `RUST_LOG` overrides the configured filter. A second
/// call (tests) installs nothing and exports nothing.
///
/// # Errors
/// The trace settings are invalid (an endpoint that is no URL).
pub fn init(log: &LogSettings, traces: &TraceSettings, service: &str) -> Result<Option<Exporter>, String> {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let lines = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    // JSON lines carry every enclosing span's fields, so the request's `request_id` and
    // `trace_id` are on each line logged inside it.
    let lines = match log.format {
        LogFormat::Json => lines.json().flatten_event(true).with_current_span(false).with_span_list(true).boxed(),
        LogFormat::Pretty => lines.compact().boxed(),
    };
    // Each layer filters on its own: a quiet log (`warn`) must not silence the spans.
    let (spans, exporter) = crate::trace::layer(traces, service)?.unzip();
    let installed = tracing_subscriber::registry().with(lines.with_filter(filter)).with(spans).try_init().is_ok();
    Ok(exporter.filter(|_| installed))
}

/// Latency buckets in seconds: fine below 50 ms, where the budget says requests should be.
const LATENCY_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// The process's Prometheus recorder (the `metrics` facade has one global recorder; tests
/// that start several apps in one process share it).
pub fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), LATENCY_BUCKETS)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder was installed first; metrics then go there.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Sets the process gauges from the kernel's accounting; `/metrics` calls it per scrape, so
/// nothing runs on the request path and the values are as fresh as the scrape. The exporter
/// has no process collector, and these are three small reads of procfs/cgroupfs.
///
/// - `process_cpu_seconds_total`: user + system CPU time. A gauge although the name is a
///   counter's: the `metrics` facade's counters hold integers, and `rate()` works the same.
/// - `process_resident_memory_bytes`: resident set size.
/// - `process_memory_limit_bytes`: the cgroup's memory limit; absent when there is none, so
///   that a ratio to it (the memory alert) has no series rather than a false one.
pub fn sample_process() {
    if let Some(seconds) = std::fs::read_to_string("/proc/self/stat").ok().as_deref().and_then(cpu_seconds) {
        metrics::gauge!("process_cpu_seconds_total").set(seconds);
    }
    if let Some(bytes) = std::fs::read_to_string("/proc/self/status").ok().as_deref().and_then(resident_bytes) {
        metrics::gauge!("process_resident_memory_bytes").set(bytes);
    }
    if let Some(bytes) = memory_limit() {
        metrics::gauge!("process_memory_limit_bytes").set(bytes);
    }
}

/// Ticks per second of `/proc/<pid>/stat`'s times: the kernel reports them in USER_HZ,
/// which is 100 on every architecture Linux ships (the ABI fixed it; CONFIG_HZ is separate).
const USER_HZ: f64 = 100.0;

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line, in seconds. The command
/// name (field 2) may hold spaces and parentheses, so fields are counted after its last `)`.
fn cpu_seconds(stat: &str) -> Option<f64> {
    let mut after_name = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
    // After the name: state is field 3, so utime (14) is the 12th from here.
    let utime: u64 = after_name.nth(11)?.parse().ok()?;
    let stime: u64 = after_name.next()?.parse().ok()?;
    #[allow(clippy::cast_precision_loss)] // ticks of a process's life fit f64's 53 bits
    Some((utime + stime) as f64 / USER_HZ)
}

/// `VmRSS` of `/proc/<pid>/status` (in kB there), in bytes.
fn resident_bytes(status: &str) -> Option<f64> {
    let kb: u64 =
        status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.trim().strip_suffix("kB")?.trim().parse().ok()?;
    #[allow(clippy::cast_precision_loss)] // a gauge
    Some((kb * 1024) as f64)
}

/// The memory limit of this process's cgroup: v2's `memory.max` (the path from
/// `/proc/self/cgroup`'s `0::` line; `/` inside a container's namespace), else v1's
/// `memory.limit_in_bytes` of the namespace's root. `None` when unlimited or unknown.
pub fn memory_limit() -> Option<f64> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let v2 = own
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|path| format!("/sys/fs/cgroup{}/memory.max", path.trim_end_matches('/')));
    let text = v2
        .and_then(|p| std::fs::read_to_string(p).ok())
        .or_else(|| std::fs::read_to_string("/sys/fs/cgroup/memory/memory.limit_in_bytes").ok())?;
    limit_bytes(&text)
}

/// A cgroup limit file's value: `max` (v2) or a page-rounded `i64::MAX` (v1) mean none.
fn limit_bytes(text: &str) -> Option<f64> {
    let bytes: u64 = text.trim().parse().ok()?;
    #[allow(clippy::cast_precision_loss)] // a gauge
    (bytes < 1 << 62).then_some(bytes as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_counted_after_a_name_with_spaces_and_parentheses() {
        let stat = "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 130 0 0 20 0 8 0 1000 0 0";
        assert_eq!(cpu_seconds(stat), Some(3.8));
    }

    #[test]
    fn resident_memory_is_read_in_bytes() {
        assert_eq!(resident_bytes("Name:\tx\nVmRSS:\t   2048 kB\nVmSwap:\t0 kB\n"), Some(2_097_152.0));
        assert_eq!(resident_bytes("Name:\tx\n"), None);
    }

    #[test]
    fn an_unlimited_cgroup_has_no_limit() {
        assert_eq!(limit_bytes("max\n"), None);
        assert_eq!(limit_bytes("9223372036854771712\n"), None);
        assert_eq!(limit_bytes("536870912\n"), Some(536_870_912.0));
    }
}
