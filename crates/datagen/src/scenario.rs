//! Deploys over the window (build ids) and the one injected anomaly.

use std::collections::HashSet;

use rand::Rng;
use serde::Serialize;

use crate::config::{GeneratorConfig, duration_ns};
use crate::topology::{PAYMENT, REGIONS, SERVICES, ServiceId};

/// Builds each service runs during the window (the first is live at its start).
pub const BUILDS_PER_SERVICE: usize = 3;
/// The slowed-down service.
pub const ANOMALY_SERVICE: ServiceId = PAYMENT;
/// Index in [`REGIONS`] of the region where the bad build is slow.
pub const ANOMALY_REGION: usize = 2;
/// How much slower the anomalous build makes the service's spans.
pub const ANOMALY_SLOWDOWN: f64 = 10.0;
/// When the bad build is deployed, as a fraction of the window.
pub const ANOMALY_START_FRACTION: f64 = 0.6;

/// One deploy: a build id live from `from_ns` until the next deploy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Deploy {
    /// `build_id` of every span and log the service emits while it is live.
    pub build_id: String,
    /// When it went live, in ns since the epoch.
    pub from_ns: i64,
}

/// The injected anomaly: what a BubbleUp over a heatmap should find.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Anomaly {
    /// `service.name` (and dataset) of the slow spans.
    pub service: &'static str,
    /// `cloud.region` where the build is slow.
    pub region: &'static str,
    /// `build_id` of the bad build.
    pub build_id: String,
    /// Factor applied to the self time of the service's spans.
    pub slowdown: f64,
    /// When the bad build went live, in ns since the epoch.
    pub starts_at_ns: i64,
    /// One sentence for people.
    pub description: String,
}

impl Anomaly {
    /// Whether a span of `service` in `region` running `build_id` is slowed down.
    pub fn applies(&self, service: &str, region: &str, build_id: &str) -> bool {
        service == self.service && region == self.region && build_id == self.build_id
    }
}

/// The deploy history of every service and the anomaly among them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scenario {
    /// Deploys per service ([`crate::topology::ServiceId`] order), oldest first.
    pub deploys: Vec<Vec<Deploy>>,
    /// The injected anomaly.
    pub anomaly: Anomaly,
}

impl Scenario {
    /// Draws build ids and deploy times from `rng`.
    pub fn new(config: &GeneratorConfig, rng: &mut impl Rng) -> Scenario {
        let start = config.start_time_ns();
        let window = duration_ns(config.window) as f64;
        let at = |fraction: f64| start + (window * fraction) as i64;
        let mut seen = HashSet::new();
        let mut build_id = |rng: &mut dyn rand::RngCore| loop {
            let id = format!("{:07x}", rng.next_u32() & 0x0fff_ffff);
            if seen.insert(id.clone()) {
                return id;
            }
        };
        let deploys: Vec<Vec<Deploy>> = (0..SERVICES.len())
            .map(|service| {
                let second = if service == ANOMALY_SERVICE {
                    0.3
                } else {
                    rng.random_range(0.15..0.45)
                };
                let third = if service == ANOMALY_SERVICE {
                    ANOMALY_START_FRACTION
                } else {
                    rng.random_range(0.5..0.9)
                };
                [0.0, second, third]
                    .into_iter()
                    .map(|fraction| Deploy {
                        build_id: build_id(rng),
                        from_ns: at(fraction),
                    })
                    .collect()
            })
            .collect();
        let bad = &deploys[ANOMALY_SERVICE][BUILDS_PER_SERVICE - 1];
        let service = SERVICES[ANOMALY_SERVICE].name;
        let region = REGIONS[ANOMALY_REGION].0;
        let anomaly = Anomaly {
            service,
            region,
            build_id: bad.build_id.clone(),
            slowdown: ANOMALY_SLOWDOWN,
            starts_at_ns: bad.from_ns,
            description: format!(
                "build {} of service {service} is {ANOMALY_SLOWDOWN}x slower in region {region} \
                 (spans where service.name = {service}, cloud.region = {region}, build_id = {})",
                bad.build_id, bad.build_id
            ),
        };
        Scenario { deploys, anomaly }
    }

    /// The build `service` runs at `time_ns`.
    pub fn build_at(&self, service: ServiceId, time_ns: i64) -> &str {
        let deploys = &self.deploys[service];
        let live = deploys
            .iter()
            .rposition(|d| d.from_ns <= time_ns)
            .unwrap_or(0);
        &deploys[live].build_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn the_bad_build_is_live_from_its_start() {
        let config = GeneratorConfig::new(3, 100, 1_700_000_000_000_000_000);
        let scenario = Scenario::new(&config, &mut ChaCha8Rng::seed_from_u64(3));
        let anomaly = &scenario.anomaly;
        assert_eq!(anomaly.service, "payment");
        assert_eq!(anomaly.region, "eu-west-1");
        assert_eq!(
            scenario.build_at(ANOMALY_SERVICE, anomaly.starts_at_ns),
            anomaly.build_id
        );
        assert_ne!(
            scenario.build_at(ANOMALY_SERVICE, anomaly.starts_at_ns - 1),
            anomaly.build_id
        );
        assert_eq!(
            scenario.build_at(ANOMALY_SERVICE, config.start_time_ns()),
            scenario.deploys[ANOMALY_SERVICE][0].build_id
        );
        assert!(anomaly.description.contains(&anomaly.build_id));
        let ids: HashSet<_> = scenario
            .deploys
            .iter()
            .flatten()
            .map(|d| &d.build_id)
            .collect();
        assert_eq!(ids.len(), SERVICES.len() * BUILDS_PER_SERVICE);
    }
}
