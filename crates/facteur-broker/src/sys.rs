//! `$SYS` topics: the broker's own figures, published as retained messages every
//! `sys_interval` seconds under mosquitto's names.

use crate::message::Message;
use crate::router::Router;
use facteur_codec::{Properties, QoS};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// An exponentially decayed rate per minute over 1, 5 and 15 minutes, as mosquitto's
/// `load/...` figures.
#[derive(Debug, Default, Clone, Copy)]
struct Load {
    last: u64,
    averages: [f64; 3],
}

impl Load {
    const PERIODS: [f64; 3] = [60.0, 300.0, 900.0];

    fn update(&mut self, total: u64, interval: f64) {
        let per_minute = total.saturating_sub(self.last) as f64 * 60.0 / interval;
        self.last = total;
        for (average, period) in self.averages.iter_mut().zip(Self::PERIODS) {
            let decay = (-interval / period).exp();
            *average = per_minute + decay * (*average - per_minute);
        }
    }
}

/// Publishes the `$SYS` topics until the broker stops.
pub(crate) async fn run(
    router: Arc<Router>,
    interval: Duration,
    mut stopped: watch::Receiver<bool>,
) {
    let started = tokio::time::Instant::now();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut loads = [Load::default(); 4];
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stopped.changed() => return,
        }
        let s = &router.stats;
        let totals = [
            s.messages_received.load(Ordering::Relaxed),
            s.messages_sent.load(Ordering::Relaxed),
            s.bytes_received.load(Ordering::Relaxed),
            s.bytes_sent.load(Ordering::Relaxed),
        ];
        for (load, total) in loads.iter_mut().zip(totals) {
            load.update(total, interval.as_secs_f64());
        }
        let (links, sessions) = (router.links(), router.sessions());
        let mut figures: Vec<(String, String)> = vec![
            (
                "version".into(),
                format!("facteur version {}", env!("CARGO_PKG_VERSION")),
            ),
            (
                "uptime".into(),
                format!("{} seconds", started.elapsed().as_secs()),
            ),
            ("clients/connected".into(), links.to_string()),
            (
                "clients/disconnected".into(),
                sessions.saturating_sub(links).to_string(),
            ),
            ("clients/total".into(), sessions.to_string()),
            // Sessions held without a task until their client speaks (facteur's own).
            ("clients/parked".into(), router.parked().to_string()),
            ("clients/maximum".into(), router.max_links().to_string()),
            ("messages/received".into(), totals[0].to_string()),
            ("messages/sent".into(), totals[1].to_string()),
            ("bytes/received".into(), totals[2].to_string()),
            ("bytes/sent".into(), totals[3].to_string()),
            (
                "publish/messages/dropped".into(),
                s.dropped.load(Ordering::Relaxed).to_string(),
            ),
            (
                "subscriptions/count".into(),
                router.subscription_count().to_string(),
            ),
            (
                "retained messages/count".into(),
                router.retained_count().to_string(),
            ),
        ];
        for (load, name) in loads.iter().zip([
            "messages/received",
            "messages/sent",
            "bytes/received",
            "bytes/sent",
        ]) {
            for (average, span) in load.averages.iter().zip(["1min", "5min", "15min"]) {
                figures.push((format!("load/{name}/{span}"), format!("{average:.2}")));
            }
        }
        for (topic, value) in figures {
            let topic = format!("$SYS/broker/{topic}");
            let message = Message::new(
                &topic,
                value.as_bytes(),
                QoS::AtMostOnce,
                true,
                &Properties::EMPTY,
                router.now(),
            );
            let waiting = router.publish(0, message).waiting;
            router.drop_waiting(waiting);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_converges_to_the_rate_per_minute() {
        let mut load = Load::default();
        let mut total = 0;
        for _ in 0..2000 {
            total += 10; // 10 every 10 s: 60 a minute
            load.update(total, 10.0);
        }
        for average in load.averages {
            assert!((average - 60.0).abs() < 0.01, "{average}");
        }
        // The 1-minute figure reacts faster than the 15-minute one.
        load.update(total, 10.0);
        load.update(total, 10.0);
        assert!(load.averages[0] < load.averages[2]);
    }
}
