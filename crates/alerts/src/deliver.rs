//! Delivering the outbox: oldest first, each alert's notifications in order,
//! retried with exponential backoff; a notification leaves the outbox only
//! after its receiver answered 2xx (or refused it for good with a 4xx).
//!
//! Delivery is at least once: a crash between a receiver's 2xx and the
//! outbox's write sends that one notification again after the restart, with
//! the same `X-Quarry-Notification-Id` and dedup key (PagerDuty and
//! Alertmanager merge it into the same alert).

use std::collections::HashSet;
use std::time::Duration;

use quarry_schema::{Clock, SystemClock};
use tracing::{info, warn};

use crate::notify::Notification;
use crate::service::Alerts;

/// The first retry's delay; each next one doubles, up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest delay between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Attempts before a notification is given up (about a day at the longest delay).
pub const MAX_ATTEMPTS: u32 = 300;
/// Wall time: retries wait real seconds whatever alert time says.
fn system_now_ns() -> i64 {
    SystemClock.now_ns()
}

/// Delivery rounds per pass: an alert's resolve can follow its trigger at once.
const ROUNDS_PER_PASS: usize = 4;

/// What became of one attempt.
enum Outcome {
    Delivered,
    /// A 4xx other than 408/429: sending it again cannot help.
    Refused(String),
    Retry(String),
}

/// The delay before attempt `attempts + 1`.
pub fn backoff(attempts: u32) -> Duration {
    let factor = 1u32
        .checked_shl(attempts.saturating_sub(1).min(16))
        .unwrap_or(u32::MAX);
    FIRST_BACKOFF.saturating_mul(factor).min(MAX_BACKOFF)
}

impl Alerts {
    /// Sends every notification that is due; returns how many were delivered.
    pub async fn deliver(&self) -> usize {
        let _one_pass = self.delivering.lock().await;
        let mut delivered = 0;
        for _ in 0..ROUNDS_PER_PASS {
            let due = self.due_notifications().await;
            if due.is_empty() {
                break;
            }
            let mut outcomes = Vec::with_capacity(due.len());
            for notification in &due {
                outcomes.push((notification.id.clone(), self.send(notification).await));
            }
            let now = system_now_ns();
            let result = self
                .mutate(|document| {
                    for (id, outcome) in &outcomes {
                        let Some(at) = document.outbox.iter().position(|n| &n.id == id) else {
                            continue;
                        };
                        match outcome {
                            Outcome::Delivered => {
                                document.outbox.remove(at);
                            }
                            Outcome::Refused(error) => {
                                let n = document.outbox.remove(at);
                                warn!(recipient = %n.recipient_id, dedup_key = %n.dedup_key, %error, "notification refused by its receiver; dropped");
                            }
                            Outcome::Retry(error) => {
                                let n = &mut document.outbox[at];
                                n.attempts += 1;
                                n.last_error = Some(error.clone());
                                if n.attempts >= MAX_ATTEMPTS {
                                    let n = document.outbox.remove(at);
                                    warn!(recipient = %n.recipient_id, dedup_key = %n.dedup_key, %error, "notification undeliverable; given up");
                                } else {
                                    let delay = i64::try_from(backoff(n.attempts).as_nanos()).unwrap_or(i64::MAX);
                                    n.next_attempt_ns = now.saturating_add(delay);
                                }
                            }
                        }
                    }
                    Ok(())
                })
                .await;
            if let Err(error) = result {
                warn!(%error, "cannot record notification deliveries; they will be retried");
                break;
            }
            let sent = outcomes
                .iter()
                .filter(|(_, outcome)| matches!(outcome, Outcome::Delivered))
                .count();
            delivered += sent;
            if sent == 0 {
                break;
            }
        }
        delivered
    }

    /// The notifications to send now: due, and the first waiting of their
    /// (endpoint, dedup key), so an alert's resolve never overtakes its trigger.
    async fn due_notifications(&self) -> Vec<Notification> {
        let now = system_now_ns();
        let document = self.document.lock().await;
        let mut taken = HashSet::new();
        let mut due = Vec::new();
        for notification in &document.outbox {
            let key = (
                notification.endpoint.clone(),
                notification.dedup_key.clone(),
            );
            if !taken.insert(key) {
                continue;
            }
            if notification.next_attempt_ns <= now {
                due.push(notification.clone());
            }
        }
        due
    }

    async fn send(&self, notification: &Notification) -> Outcome {
        let body = match serde_json::to_vec(&notification.body) {
            Ok(body) => body,
            Err(error) => return Outcome::Refused(error.to_string()),
        };
        let mut request = self
            .http
            .post(&notification.endpoint)
            .header("content-type", "application/json")
            .header("x-quarry-notification-id", &notification.id)
            .header("x-quarry-dedup-key", &notification.dedup_key)
            .body(body);
        if !notification.secret.is_empty() {
            request = request.header("x-honeycomb-webhook-token", &notification.secret);
        }
        match request.send().await {
            Ok(response) if response.status().is_success() => {
                info!(recipient = %notification.recipient_id, dedup_key = %notification.dedup_key, status = ?notification.status, "notification delivered");
                Outcome::Delivered
            }
            Ok(response) => {
                let status = response.status();
                let error = format!("{} answered {status}", notification.endpoint);
                if status.is_client_error() && status.as_u16() != 408 && status.as_u16() != 429 {
                    Outcome::Refused(error)
                } else {
                    Outcome::Retry(error)
                }
            }
            Err(error) => Outcome::Retry(format!("{}: {error}", notification.endpoint)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(5), Duration::from_secs(16));
        assert_eq!(backoff(40), MAX_BACKOFF);
    }
}
