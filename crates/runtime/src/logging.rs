//! Log output in MetalLB's shape: one JSON object per line with `ts`,
//! `caller`, `level`, `msg` and the event's fields (observability.md §3), or
//! human-readable text. `--log-level` takes MetalLB's values.

use std::fmt;

use k8s_openapi::jiff::Timestamp;
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{EnvFilter, filter::LevelFilter};

use crate::error::Error;

/// `--log-format`: MetalLB's JSON lines, or tracing's human-readable text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// MetalLB's shape: one JSON object per line.
    Json,
    /// tracing's human-readable lines.
    Text,
}

/// Maps MetalLB's `--log-level` values onto a tracing filter.
pub fn parse_level(level: &str) -> Result<LevelFilter, Error> {
    match level {
        "all" => Ok(LevelFilter::TRACE),
        "debug" => Ok(LevelFilter::DEBUG),
        "info" => Ok(LevelFilter::INFO),
        "warn" => Ok(LevelFilter::WARN),
        "error" => Ok(LevelFilter::ERROR),
        "none" => Ok(LevelFilter::OFF),
        other => Err(Error::Logging(format!(
            "failed to parse log level: {other}"
        ))),
    }
}

/// Installs the global subscriber (stdout; `RUST_LOG` directives refine the
/// level). Returns `Ok(false)` when one is already installed (tests running
/// several processes' code, or a binary that set its own), which is not an
/// error.
pub fn init(level: &str, format: LogFormat) -> Result<bool, Error> {
    let filter = EnvFilter::builder()
        .with_default_directive(parse_level(level)?.into())
        .from_env_lossy();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout);
    let installed = match format {
        LogFormat::Json => builder
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .event_format(MetalLbJson)
            .try_init()
            .is_ok(),
        LogFormat::Text => builder.try_init().is_ok(),
    };
    Ok(installed)
}

/// Formats events as MetalLB's zap-style JSON lines.
pub struct MetalLbJson;

impl<S, N> FormatEvent<S, N> for MetalLbJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut obj = Map::new();
        obj.insert("ts".into(), Value::String(Timestamp::now().to_string()));
        if let (Some(file), Some(line)) = (meta.file(), meta.line()) {
            let short = file.rsplit('/').next().unwrap_or(file);
            obj.insert("caller".into(), Value::String(format!("{short}:{line}")));
        }
        obj.insert("level".into(), Value::String(level_name(meta.level()).into()));
        // Span fields (e.g. `controller`) give every line its context; they
        // are JSON because `init` pairs this formatter with `JsonFields`.
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let ext = span.extensions();
                if let Some(fields) = ext.get::<tracing_subscriber::fmt::FormattedFields<N>>()
                    && let Ok(Value::Object(m)) = serde_json::from_str::<Value>(&fields.fields)
                {
                    obj.extend(m);
                }
            }
        }
        let mut visitor = JsonVisitor(&mut obj);
        event.record(&mut visitor);
        let line = serde_json::to_string(&obj).map_err(|_| fmt::Error)?;
        writeln!(writer, "{line}")
    }
}

fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::TRACE | Level::DEBUG => "debug",
        Level::INFO => "info",
        Level::WARN => "warn",
        Level::ERROR => "error",
    }
}

struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl JsonVisitor<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        let key = if field.name() == "message" { "msg" } else { field.name() };
        self.0.insert(key.to_string(), value);
    }
}

impl Visit for JsonVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::String(value.to_string()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::String(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, Value::String(format!("{value:?}")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels() {
        assert_eq!(parse_level("all").unwrap(), LevelFilter::TRACE);
        assert_eq!(parse_level("none").unwrap(), LevelFilter::OFF);
        let err = parse_level("loud").unwrap_err().to_string();
        assert_eq!(err, "failed to initialize logging: failed to parse log level: loud");
    }

    #[test]
    fn json_line_shape() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let out = buf.clone();
        let sub = tracing_subscriber::fmt()
            .event_format(MetalLbJson)
            .with_writer(move || buf.clone())
            .finish();
        tracing::subscriber::with_default(sub, || {
            tracing::warn!(event = "ipAllocated", ips = "10.0.0.1", "assigned");
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let v: Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(v["level"], "warn");
        assert_eq!(v["msg"], "assigned");
        assert_eq!(v["event"], "ipAllocated");
        assert!(v["caller"].as_str().unwrap().starts_with("logging.rs:"));
        assert!(v["ts"].as_str().unwrap().ends_with('Z'));
    }
}
