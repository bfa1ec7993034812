//! Prometheus metrics (prometheus-client), served at `/metrics`. Labels carry channel, provider, type, outcome and
//! event kind only: never an address, a card number or a name.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::domain::{ChannelKind, NotificationType};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub r#type: String,
    pub channel: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SendLabels {
    pub channel: String,
    pub provider: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabels {
    pub provider: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReceiptLabels {
    pub provider: String,
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PendingLabels {
    pub channel: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperatorPauseLabels {
    pub channel: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChannelStateLabels {
    pub channel: String,
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FallbackLabels {
    pub r#type: String,
    pub from: String,
    pub to: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChannelLabels {
    pub channel: String,
    pub provider: String,
}

/// Send outcomes as they appear in the `outcome` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendOutcome {
    Sent,
    Retry,
    Error,
    /// The provider said the recipient opted out (replied STOP).
    OptedOut,
}

impl SendOutcome {
    fn as_str(self) -> &'static str {
        match self {
            SendOutcome::Sent => "sent",
            SendOutcome::Retry => "retry",
            SendOutcome::Error => "error",
            SendOutcome::OptedOut => "opted_out",
        }
    }
}

pub struct Metrics {
    registry: Registry,
    events_received: Family<KindLabels, Counter>,
    requests_created: Family<RequestLabels, Counter>,
    sends: Family<SendLabels, Counter>,
    send_duration: Family<ChannelLabels, Histogram>,
    sent_without_id: Family<ChannelLabels, Counter>,
    outbox_lag: Gauge<f64, std::sync::atomic::AtomicU64>,
    listener_connected: Gauge,
    listener_reconnects: Counter,
    drain_errors: Counter,
    events_set_aside: Counter,
    channel_paused: Family<ChannelLabels, Gauge>,
    channel_paused_by_operator: Family<OperatorPauseLabels, Gauge>,
    channel_state: Family<ChannelStateLabels, Gauge>,
    dry_run: Gauge,
    webhook_rejected: Family<ProviderLabels, Counter>,
    http_connections_dropped: Family<ReasonLabels, Counter>,
    receipts: Family<ReceiptLabels, Counter>,
    dispatch_errors: Counter,
    unsigned_refused: Family<PendingLabels, Counter>,
    fallbacks: Family<FallbackLabels, Counter>,
    oldest_pending: Family<PendingLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// Mirrors `listener_connected` for `/readyz`.
    connected: Arc<AtomicBool>,
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        let mut root = Registry::default();
        // The process_* figures keep their standard names; ours share the service prefix.
        root.register_collector(Box::new(ProcessCollector));
        let registry = root.sub_registry_with_prefix("cantina_notify");
        let events_received = Family::<KindLabels, Counter>::default();
        registry.register(
            "events_received",
            "Outbox events turned into requests (or recorded as ignored), by event kind",
            events_received.clone(),
        );
        let requests_created = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests_created",
            "Requests recorded in solicitudes_notificacion, by type, channel and outcome (pending, or error when no usable address)",
            requests_created.clone(),
        );
        let sends = Family::<SendLabels, Counter>::default();
        registry.register(
            "sends",
            "Send attempts by channel, provider and outcome (sent, retry, error)",
            sends.clone(),
        );
        let sent_without_id = Family::<ChannelLabels, Counter>::default();
        registry.register(
            "sent_without_provider_id",
            "Sends a provider accepted without the message id its API documents (recorded Enviado with a warning; receipts cannot be matched)",
            sent_without_id.clone(),
        );
        let send_duration = Family::<ChannelLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0])
        });
        registry.register("send_duration_seconds", "Time one provider call took", send_duration.clone());
        let outbox_lag = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "outbox_lag_seconds",
            "Age of the oldest outbox event not yet processed (0 when drained)",
            outbox_lag.clone(),
        );
        let listener_connected = Gauge::default();
        registry.register("listener_connected", "1 while the LISTEN connection is up", listener_connected.clone());
        let listener_reconnects = Counter::default();
        registry.register(
            "listener_reconnects",
            "Times the LISTEN connection was lost and re-established",
            listener_reconnects.clone(),
        );
        let drain_errors = Counter::default();
        registry.register(
            "drain_errors",
            "Outbox drains that failed (database errors); the events stay and are retried",
            drain_errors.clone(),
        );
        let events_set_aside = Counter::default();
        registry.register(
            "events_set_aside",
            "Outbox events the database refused to turn into requests, set aside with the reason (resultado 'apartado: …')",
            events_set_aside.clone(),
        );
        let channel_paused = Family::<ChannelLabels, Gauge>::default();
        registry.register(
            "channel_paused",
            "1 while a channel is paused, because its provider rejected the configuration (credentials, sender) or by an operator (channel pause)",
            channel_paused.clone(),
        );
        let channel_paused_by_operator = Family::<OperatorPauseLabels, Gauge>::default();
        registry.register(
            "channel_paused_by_operator",
            "1 while an operator has paused the channel (cantina-notify channel pause; table cantina_notify_canales_pausados)",
            channel_paused_by_operator.clone(),
        );
        let channel_state = Family::<ChannelStateLabels, Gauge>::default();
        registry.register(
            "channel_state",
            "1 for the channel's current state in this process, 0 for the others: not_configured (no provider), active, paused_by_operator (channel pause), paused_by_provider (the provider rejected the configuration; a probe resumes it)",
            channel_state.clone(),
        );
        let dry_run = Gauge::default();
        registry.register(
            "dry_run",
            "1 when the service runs with CANTINA__DISPATCH__DRY_RUN=true: requests are rendered and recorded, nothing is sent",
            dry_run.clone(),
        );
        let webhook_rejected = Family::<ProviderLabels, Counter>::default();
        registry.register(
            "webhook_rejected",
            "Provider callbacks refused for a missing or bad signature",
            webhook_rejected.clone(),
        );
        let http_connections_dropped = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "http_connections_dropped",
            "HTTP connections the service closed on a slow or surplus client: over_cap (refused at once), header_timeout, body_timeout",
            http_connections_dropped.clone(),
        );
        let receipts = Family::<ReceiptLabels, Counter>::default();
        registry.register(
            "receipts",
            "Verified delivery receipts by provider and delivery state (sent, delivered, read, failed), repeats included",
            receipts.clone(),
        );
        let dispatch_errors = Counter::default();
        registry.register(
            "dispatch_errors",
            "Dispatcher database errors (claims or outcome writes)",
            dispatch_errors.clone(),
        );
        let unsigned_refused = Family::<PendingLabels, Counter>::default();
        registry.register(
            "unsigned_requests_refused",
            "Keyed requests not sent because another database role wrote or changed them (no valid signature, or put back to Pendiente after they were sent), by channel",
            unsigned_refused.clone(),
        );
        let fallbacks = Family::<FallbackLabels, Counter>::default();
        registry.register(
            "fallbacks",
            "Next-channel requests created by the fallback, by type, from and to channel, and reason (error, omitted, failed_receipt, no_receipt)",
            fallbacks.clone(),
        );
        let oldest_pending = Family::<PendingLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register(
            "oldest_pending_request_age_seconds",
            "Age, since it was created, of the oldest Pendiente request that is due now (not waiting for a retry time or the end of quiet hours), by channel; 0 when none",
            oldest_pending.clone(),
        );
        Arc::new(Self {
            registry: root,
            events_received,
            requests_created,
            sends,
            send_duration,
            sent_without_id,
            outbox_lag,
            listener_connected,
            listener_reconnects,
            drain_errors,
            events_set_aside,
            channel_paused,
            channel_paused_by_operator,
            channel_state,
            dry_run,
            webhook_rejected,
            http_connections_dropped,
            receipts,
            dispatch_errors,
            unsigned_refused,
            fallbacks,
            oldest_pending,
            connected: Arc::new(AtomicBool::new(false)),
        })
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    pub fn event_received(&self, kind: &str) {
        self.events_received.get_or_create(&KindLabels { kind: kind.to_string() }).inc();
    }

    pub fn fallback(&self, t: NotificationType, from: ChannelKind, to: ChannelKind, reason: &str) {
        self.fallbacks
            .get_or_create(&FallbackLabels {
                r#type: t.as_str().into(),
                from: from.config_name().into(),
                to: to.config_name().into(),
                reason: reason.into(),
            })
            .inc();
    }

    pub fn request_created(&self, t: NotificationType, c: ChannelKind, outcome: &str) {
        self.requests_created
            .get_or_create(&RequestLabels {
                r#type: t.as_str().into(),
                channel: c.config_name().into(),
                outcome: outcome.into(),
            })
            .inc();
    }

    /// Creates a channel's `sent` and `error` series at 0, so `increase()` sees the first send after a restart and a
    /// ratio of the two is defined from the start.
    pub fn init_sends(&self, channel: ChannelKind, provider: &str) {
        for outcome in [SendOutcome::Sent, SendOutcome::Error] {
            let _ = self.sends.get_or_create(&SendLabels {
                channel: channel.config_name().into(),
                provider: provider.into(),
                outcome: outcome.as_str().into(),
            });
        }
    }

    pub fn send(&self, channel: ChannelKind, provider: &str, outcome: SendOutcome, seconds: f64) {
        let labels = ChannelLabels { channel: channel.config_name().into(), provider: provider.into() };
        self.send_duration.get_or_create(&labels).observe(seconds);
        self.sends
            .get_or_create(&SendLabels {
                channel: labels.channel,
                provider: labels.provider,
                outcome: outcome.as_str().into(),
            })
            .inc();
    }

    pub fn sent_without_id(&self, channel: ChannelKind, provider: &str) {
        self.sent_without_id
            .get_or_create(&ChannelLabels { channel: channel.config_name().into(), provider: provider.into() })
            .inc();
    }

    /// Every channel gets a value (0 when nothing is due), so an alert sees the series go back down.
    pub fn set_oldest_pending(&self, channels: &[ChannelKind], ages: &[(ChannelKind, f64)]) {
        for c in channels {
            let age = ages.iter().find(|(k, _)| k == c).map_or(0.0, |(_, a)| *a);
            self.oldest_pending.get_or_create(&PendingLabels { channel: c.config_name().into() }).set(age);
        }
    }

    pub fn set_outbox_lag(&self, seconds: f64) {
        self.outbox_lag.set(seconds);
    }

    pub fn set_listener_connected(&self, up: bool) {
        self.listener_connected.set(i64::from(up));
        self.connected.store(up, Ordering::SeqCst);
    }

    pub fn listener_is_connected(&self) -> bool {
        self.connected.load(Ordering::SeqCst)
    }

    pub fn listener_reconnected(&self) {
        self.listener_reconnects.inc();
    }

    pub fn drain_failed(&self) {
        self.drain_errors.inc();
    }

    pub fn event_set_aside(&self) {
        self.events_set_aside.inc();
    }

    pub fn set_channel_paused(&self, channel: ChannelKind, provider: &str, paused: bool) {
        self.channel_paused
            .get_or_create(&ChannelLabels { channel: channel.config_name().into(), provider: provider.into() })
            .set(i64::from(paused));
    }

    pub fn set_channel_paused_by_operator(&self, channel: ChannelKind, paused: bool) {
        self.channel_paused_by_operator
            .get_or_create(&OperatorPauseLabels { channel: channel.config_name().into() })
            .set(i64::from(paused));
    }

    /// 1 for `state`, 0 for every other state a process can be in, so a change is one scrape away on each series.
    pub fn set_channel_state(&self, channel: ChannelKind, state: crate::domain::StateKind) {
        for s in crate::domain::StateKind::METRIC {
            self.channel_state
                .get_or_create(&ChannelStateLabels { channel: channel.config_name().into(), state: s.label().into() })
                .set(i64::from(s == state));
        }
    }

    pub fn set_dry_run(&self, on: bool) {
        self.dry_run.set(i64::from(on));
    }

    pub fn webhook_rejected(&self, provider: &str) {
        self.webhook_rejected.get_or_create(&ProviderLabels { provider: provider.into() }).inc();
    }

    /// `reason`: `over_cap`, `header_timeout` or `body_timeout`.
    pub fn http_connection_dropped(&self, reason: &str) {
        self.http_connections_dropped.get_or_create(&ReasonLabels { reason: reason.into() }).inc();
    }

    pub fn receipt(&self, provider: &str, state: &str) {
        self.receipts.get_or_create(&ReceiptLabels { provider: provider.into(), state: state.into() }).inc();
    }

    pub fn dispatch_failed(&self) {
        self.dispatch_errors.inc();
    }

    pub fn unsigned_refused(&self, destino: &str) {
        let channel = crate::domain::ChannelKind::parse(destino).map_or("-", |c| c.config_name()).to_string();
        self.unsigned_refused.get_or_create(&PendingLabels { channel }).inc();
    }
}

/// The standard `process_*` figures, read from /proc on each scrape.
#[derive(Debug)]
struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(p) = ProcessStats::read() else {
            return Ok(());
        };
        let gauges: [(&str, &str, f64); 5] = [
            ("process_resident_memory_bytes", "Resident memory size in bytes", p.rss_bytes),
            ("process_virtual_memory_bytes", "Virtual memory size in bytes", p.vsize_bytes),
            ("process_open_fds", "Number of open file descriptors", p.open_fds),
            ("process_max_fds", "Maximum number of open file descriptors", p.max_fds),
            ("process_start_time_seconds", "Start time of the process since the Unix epoch in seconds", p.start_time),
        ];
        for (name, help, value) in gauges {
            let g = ConstGauge::new(value);
            g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
        let c = ConstCounter::new(p.cpu_seconds);
        c.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            None,
            c.metric_type(),
        )?)?;
        Ok(())
    }
}

struct ProcessStats {
    rss_bytes: f64,
    vsize_bytes: f64,
    open_fds: f64,
    max_fds: f64,
    start_time: f64,
    cpu_seconds: f64,
}

impl ProcessStats {
    fn read() -> Option<Self> {
        // SAFETY: sysconf has no preconditions.
        let (ticks, page) =
            unsafe { (libc::sysconf(libc::_SC_CLK_TCK) as f64, libc::sysconf(libc::_SC_PAGESIZE) as f64) };
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name, which is in parentheses and may contain spaces.
        let rest = &stat[stat.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
        let (utime, stime, starttime, vsize, rss) = (num(11)?, num(12)?, num(19)?, num(20)?, num(21)?);
        let boot_time = std::fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("btime ").and_then(|v| v.trim().parse::<f64>().ok()))?;
        let open_fds = std::fs::read_dir("/proc/self/fd").map(|d| d.count() as f64).unwrap_or(0.0);
        let max_fds = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("Max open files"))
                    .and_then(|l| l.split_whitespace().nth(3).and_then(|v| v.parse::<f64>().ok()))
            })
            .unwrap_or(0.0);
        Some(Self {
            rss_bytes: rss * page,
            vsize_bytes: vsize,
            open_fds,
            max_fds,
            start_time: boot_time + starttime / ticks,
            cpu_seconds: (utime + stime) / ticks,
        })
    }
}
