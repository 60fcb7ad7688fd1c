//! Delivery from the durable outbox: one worker per integration, up to `max_in_flight`
//! notifications at once but never two for the same group (so a group's notifications arrive
//! in order), exponential backoff with jitter between attempts on retryable failures (at least
//! the receiver's `Retry-After`), and a row deleted only once delivered, superseded by a newer
//! notification for its group, refused for good, or older than `give_up_after`, each of the
//! last three logged and counted. Rows still in the table at start (a crash or restart mid-
//! retry) are delivered then: at least once, and exactly once unless promgate dies between a
//! receiver's 2xx and the row's deletion.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::config::NotificationSettings;
use super::db::{Db, IntegrationKey, OutboxRow};
use super::dispatch::{Clock, StoredNotification};
use super::metrics::AlertingMetrics;

#[derive(Default)]
struct Queue {
    /// Waiting rows by (next attempt ms, id).
    pending: BTreeMap<(i64, i64), OutboxRow>,
    /// The pending row of each group.
    by_group: HashMap<String, (i64, i64)>,
    in_flight: HashSet<String>,
}

struct Worker {
    key: IntegrationKey,
    integration: notifiers::Integration,
    queue: Mutex<Queue>,
    wake: Notify,
}

pub struct Outbox {
    workers: HashMap<IntegrationKey, Arc<Worker>>,
    db: Arc<Db>,
    /// Finished rows to delete; one task deletes whatever has gathered in one transaction.
    finished: tokio::sync::mpsc::UnboundedSender<i64>,
    finished_rx: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<i64>>>,
    settings: NotificationSettings,
    clock: Clock,
    metrics: AlertingMetrics,
}

enum Outcome {
    Sent,
    Retry(Option<Duration>, &'static str, String),
    Failed(&'static str, String),
}

impl Outbox {
    pub fn new(
        integrations: Vec<(IntegrationKey, notifiers::Integration)>,
        db: Arc<Db>,
        settings: NotificationSettings,
        clock: Clock,
        metrics: AlertingMetrics,
    ) -> Self {
        let workers = integrations
            .into_iter()
            .map(|(key, integration)| {
                (
                    key.clone(),
                    Arc::new(Worker {
                        key,
                        integration,
                        queue: Mutex::new(Queue::default()),
                        wake: Notify::new(),
                    }),
                )
            })
            .collect();
        let (finished, finished_rx) = tokio::sync::mpsc::unbounded_channel();
        Self {
            workers,
            db,
            finished,
            finished_rx: Mutex::new(Some(finished_rx)),
            settings,
            clock,
            metrics,
        }
    }

    /// Queues rows just written (or loaded at start) for delivery. A row for a group that
    /// already waits replaces the waiting one, which is deleted.
    pub fn submit(&self, rows: Vec<OutboxRow>) {
        let mut stale = Vec::new();
        let mut woken = HashSet::new();
        for row in rows {
            let Some(w) = self.workers.get(&row.key) else {
                tracing::warn!(receiver = %row.key.receiver, integration = %row.key.integration, index = row.key.index, "Dropping a notification for an integration that is no longer configured.");
                self.metrics.dropped(&row.key, "unconfigured");
                stale.push(row.id);
                continue;
            };
            let mut q = w.queue.lock();
            let slot = (row.next_ms, row.id);
            if let Some(old) = q.by_group.insert(row.group_key.clone(), slot)
                && let Some(old_row) = q.pending.remove(&old)
            {
                self.metrics.dropped(&old_row.key, "superseded");
                stale.push(old_row.id);
            }
            q.pending.insert(slot, row);
            self.metrics
                .queue(&w.key, q.pending.len() + q.in_flight.len());
            drop(q);
            woken.insert(w.key.clone());
        }
        for k in woken {
            if let Some(w) = self.workers.get(&k) {
                w.wake.notify_one();
            }
        }
        if !stale.is_empty() {
            let db = self.db.clone();
            tokio::task::spawn_blocking(move || {
                if let Err(e) = db.delete(&stale) {
                    tracing::error!(error = %e, "Deleting superseded notifications failed.");
                }
            });
        }
    }

    /// Starts one delivery task per integration; they stop at `shutdown`, letting sends under
    /// way finish for up to 5 s.
    pub fn start(
        self: &Arc<Self>,
        shutdown: CancellationToken,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let mut workers = JoinSet::new();
        for w in self.workers.values() {
            workers.spawn(self.clone().work(w.clone(), shutdown.clone()));
        }
        let rx = self.finished_rx.lock().take();
        let db = self.db.clone();
        // One task owns the workers and the batched deletes, and ends after both: the last
        // deliveries of a shutdown are deleted too.
        vec![tokio::spawn(async move {
            let Some(mut rx) = rx else { return };
            loop {
                tokio::select! {
                    Some(first) = rx.recv() => delete_finished(&db, first, &mut rx).await,
                    done = workers.join_next() => if done.is_none() { break },
                }
            }
            if let Ok(first) = rx.try_recv() {
                delete_finished(&db, first, &mut rx).await;
            }
        })]
    }

    async fn work(self: Arc<Self>, w: Arc<Worker>, shutdown: CancellationToken) {
        let mut sends: JoinSet<(OutboxRow, Outcome)> = JoinSet::new();
        loop {
            let now = self.clock.now_ms();
            let mut wake_at = None;
            {
                let mut q = w.queue.lock();
                let mut ready = Vec::new();
                for (&slot, row) in &q.pending {
                    if slot.0 > now {
                        wake_at = Some(slot.0);
                        break;
                    }
                    if q.in_flight.len() + ready.len() >= self.settings.max_in_flight {
                        break;
                    }
                    if !q.in_flight.contains(&row.group_key) {
                        ready.push(slot);
                    }
                }
                for slot in ready {
                    let Some(row) = q.pending.remove(&slot) else {
                        continue;
                    };
                    q.by_group.remove(&row.group_key);
                    q.in_flight.insert(row.group_key.clone());
                    let integ = w.integration.clone();
                    sends.spawn(async move {
                        let outcome = deliver(&integ, &row).await;
                        (row, outcome)
                    });
                }
            }
            let sleep = async {
                match wake_at {
                    Some(t) => {
                        tokio::time::sleep(Duration::from_millis((t - now).max(1) as u64)).await
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(done) = sends.join_next(), if !sends.is_empty() => {
                    if let Ok((row, outcome)) = done {
                        self.finish(&w, row, outcome).await;
                    }
                }
                _ = w.wake.notified() => {}
                _ = sleep => {}
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(done) = sends.join_next().await {
                if let Ok((row, outcome)) = done {
                    self.finish(&w, row, outcome).await;
                }
            }
        })
        .await;
    }

    async fn finish(&self, w: &Worker, mut row: OutboxRow, outcome: Outcome) {
        let now = self.clock.now_ms();
        let k = &w.key;
        let group = row.group_key.clone();
        let superseded = {
            let mut q = w.queue.lock();
            q.in_flight.remove(&group);
            q.by_group.contains_key(&group)
        };
        let mut delete = true;
        match outcome {
            Outcome::Sent => {
                self.metrics
                    .sent(k, (now - row.created_ms).max(0) as f64 / 1000.0);
                tracing::debug!(receiver = %k.receiver, integration = %k.integration, group = %group, "Notification delivered.");
            }
            Outcome::Failed(reason, msg) => {
                self.metrics.failed(k, reason);
                self.metrics.dropped(k, "permanent");
                tracing::error!(receiver = %k.receiver, integration = %k.integration, index = k.index, group = %group, reason, error = %msg, "Notification refused; not retrying.");
            }
            Outcome::Retry(retry_after, reason, msg) => {
                self.metrics.failed(k, reason);
                let age = Duration::from_millis((now - row.created_ms).max(0) as u64);
                if superseded {
                    self.metrics.dropped(k, "superseded");
                } else if age >= self.settings.give_up_after {
                    self.metrics.dropped(k, "give_up");
                    tracing::error!(receiver = %k.receiver, integration = %k.integration, index = k.index, group = %group, attempts = row.attempts + 1, error = %msg, "Giving up on a notification after give_up_after.");
                } else {
                    row.attempts += 1;
                    let wait =
                        backoff(&self.settings, row.attempts).max(retry_after.unwrap_or_default());
                    row.next_ms = now + wait.as_millis() as i64;
                    tracing::warn!(receiver = %k.receiver, integration = %k.integration, index = k.index, group = %group, attempt = row.attempts, retry_in_ms = wait.as_millis() as u64, error = %msg, "Notification failed; will retry.");
                    self.metrics.retry(k);
                    delete = false;
                    let db = self.db.clone();
                    let (id, attempts, next) = (row.id, row.attempts, row.next_ms);
                    let _ = tokio::task::spawn_blocking(move || db.reschedule(id, attempts, next))
                        .await;
                    let mut q = w.queue.lock();
                    q.by_group.insert(group.clone(), (row.next_ms, row.id));
                    q.pending.insert((row.next_ms, row.id), row.clone());
                }
            }
        }
        if delete {
            // Deleted in batches by `delete_finished`: a crash in the few milliseconds
            // between a 2xx and the deletion means one duplicate after restart, never a loss.
            let _ = self.finished.send(row.id);
        }
        let q = w.queue.lock();
        self.metrics.queue(k, q.pending.len() + q.in_flight.len());
    }
}

/// Deletes `first` and every other finished row already queued, in one transaction (a commit
/// per notification would cap delivery at the commit rate).
async fn delete_finished(
    db: &Arc<Db>,
    first: i64,
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<i64>,
) {
    let mut ids = vec![first];
    while let Ok(id) = rx.try_recv() {
        ids.push(id);
    }
    let db = db.clone();
    match tokio::task::spawn_blocking(move || db.delete(&ids)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "Deleting delivered notifications failed."),
        Err(e) => tracing::error!(error = %e, "Outbox task failed."),
    }
}

/// `retry_initial * 2^(attempt-1)`, capped at `retry_max`, with "equal jitter": half fixed,
/// half random, so many failing groups do not retry in lockstep.
fn backoff(s: &NotificationSettings, attempt: u32) -> Duration {
    let exp = s
        .retry_initial
        .saturating_mul(
            1u32.checked_shl(attempt.saturating_sub(1).min(30))
                .unwrap_or(u32::MAX),
        )
        .min(s.retry_max);
    let half = exp / 2;
    half + half.mul_f64(fastrand::f64())
}

async fn deliver(integ: &notifiers::Integration, row: &OutboxRow) -> Outcome {
    let stored: StoredNotification = match serde_json::from_str(&row.body) {
        Ok(s) => s,
        Err(e) => return Outcome::Failed("encode", format!("unreadable outbox row: {e}")),
    };
    let data = stored.to_data();
    match integ.notifier.notify(&data).await {
        Ok(()) => Outcome::Sent,
        Err(e) if e.retryable => Outcome::Retry(e.retry_after, e.reason, e.message),
        Err(e) => Outcome::Failed(e.reason, e.message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps_with_jitter() {
        let s = NotificationSettings {
            retry_initial: Duration::from_secs(1),
            retry_max: Duration::from_secs(8),
            ..Default::default()
        };
        for _ in 0..50 {
            let b1 = backoff(&s, 1);
            assert!(b1 >= Duration::from_millis(500) && b1 <= Duration::from_secs(1));
            let b3 = backoff(&s, 3);
            assert!(b3 >= Duration::from_secs(2) && b3 <= Duration::from_secs(4));
            let b10 = backoff(&s, 10);
            assert!(b10 >= Duration::from_secs(4) && b10 <= Duration::from_secs(8));
        }
    }
}
