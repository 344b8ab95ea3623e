//! The simulated system: eight services, their operations and who calls whom.
//!
//! A shop: the `frontend` serves four HTTP routes; each request is one trace that
//! fans out to `auth`, `product-catalog`, `cart`, `checkout`, `payment`, `shipping`
//! and `email`. Every operation has its own latency (log-normal self time), error
//! rate and log messages, so per-operation percentiles differ the way real ones do.

/// Index of a service in [`SERVICES`].
pub type ServiceId = usize;

/// The web tier; every trace starts here.
pub const FRONTEND: ServiceId = 0;
/// Session and API-key checks.
pub const AUTH: ServiceId = 1;
/// Product listings and details.
pub const CATALOG: ServiceId = 2;
/// Shopping carts.
pub const CART: ServiceId = 3;
/// Order placement.
pub const CHECKOUT: ServiceId = 4;
/// Card charges (the service the injected anomaly slows down).
pub const PAYMENT: ServiceId = 5;
/// Shipping quotes and shipments.
pub const SHIPPING: ServiceId = 6;
/// Order confirmation e-mails.
pub const EMAIL: ServiceId = 7;

/// One downstream call an operation makes.
#[derive(Debug, Clone, Copy)]
pub struct Call {
    /// The service called.
    pub service: ServiceId,
    /// Index of the operation in that service's [`Service::operations`].
    pub operation: usize,
    /// Chance that the call happens at all.
    pub probability: f64,
    /// Most times it is repeated (uniform in `1..=max_repeat`), e.g. one per cart item.
    pub max_repeat: u32,
}

/// One operation (span name) of a service.
#[derive(Debug, Clone, Copy)]
pub struct Operation {
    /// Span name.
    pub name: &'static str,
    /// `http.method`.
    pub method: &'static str,
    /// `http.route`.
    pub route: &'static str,
    /// Median self time in milliseconds (time not spent in calls).
    pub median_ms: f64,
    /// Shape of the log-normal self time; larger is a heavier tail.
    pub sigma: f64,
    /// Chance that the operation itself fails (500-class status, `error = true`).
    pub error_rate: f64,
    /// Chance of a non-error client status (401/404) instead of 200.
    pub client_error_rate: f64,
    /// That client status.
    pub client_error_status: i64,
    /// Chance of an INFO log record for a successful span.
    pub log_probability: f64,
    /// Body of that INFO log record.
    pub log_message: &'static str,
    /// The calls, made one after another.
    pub calls: &'static [Call],
}

/// One service: a dataset of its own, as OTLP ingest would route it.
#[derive(Debug, Clone, Copy)]
pub struct Service {
    /// `service.name`, also the dataset name.
    pub name: &'static str,
    /// Its operations (one to four).
    pub operations: &'static [Operation],
}

/// Relative frequency of each frontend operation as a trace root.
pub const ROOT_WEIGHTS: [f64; 4] = [0.40, 0.30, 0.20, 0.10];

const fn call(service: ServiceId, operation: usize) -> Call {
    Call {
        service,
        operation,
        probability: 1.0,
        max_repeat: 1,
    }
}

const fn maybe(service: ServiceId, operation: usize, probability: f64) -> Call {
    Call {
        service,
        operation,
        probability,
        max_repeat: 1,
    }
}

#[allow(clippy::too_many_arguments)]
const fn op(
    name: &'static str,
    method: &'static str,
    route: &'static str,
    median_ms: f64,
    sigma: f64,
    error_rate: f64,
    log_probability: f64,
    log_message: &'static str,
    calls: &'static [Call],
) -> Operation {
    Operation {
        name,
        method,
        route,
        median_ms,
        sigma,
        error_rate,
        client_error_rate: 0.0,
        client_error_status: 200,
        log_probability,
        log_message,
        calls,
    }
}

const fn with_client_errors(mut operation: Operation, rate: f64, status: i64) -> Operation {
    operation.client_error_rate = rate;
    operation.client_error_status = status;
    operation
}

/// Every service, indexed by [`ServiceId`].
pub const SERVICES: [Service; 8] = [
    Service {
        name: "frontend",
        operations: &[
            op(
                "GET /api/products",
                "GET",
                "/api/products",
                4.0,
                0.5,
                0.004,
                0.05,
                "listed products",
                &[
                    call(AUTH, 0),
                    maybe(CATALOG, 0, 0.7),
                    maybe(CATALOG, 2, 0.3),
                ],
            ),
            op(
                "GET /api/products/{id}",
                "GET",
                "/api/products/{id}",
                3.0,
                0.5,
                0.004,
                0.05,
                "served product page",
                &[call(AUTH, 0), call(CATALOG, 1), maybe(SHIPPING, 0, 0.5)],
            ),
            op(
                "POST /api/cart",
                "POST",
                "/api/cart",
                3.0,
                0.6,
                0.006,
                0.2,
                "item added to cart",
                &[call(AUTH, 0), call(CART, 1)],
            ),
            op(
                "POST /api/checkout",
                "POST",
                "/api/checkout",
                5.0,
                0.6,
                0.006,
                0.5,
                "checkout completed",
                &[call(AUTH, 0), call(CHECKOUT, 0)],
            ),
        ],
    },
    Service {
        name: "auth",
        operations: &[with_client_errors(
            op(
                "Authenticate",
                "POST",
                "/auth/verify",
                1.5,
                0.4,
                0.004,
                0.0,
                "",
                &[],
            ),
            0.01,
            401,
        )],
    },
    Service {
        name: "product-catalog",
        operations: &[
            op(
                "ListProducts",
                "GET",
                "/products",
                18.0,
                0.7,
                0.008,
                0.02,
                "product list served from index",
                &[],
            ),
            with_client_errors(
                op(
                    "GetProduct",
                    "GET",
                    "/products/{id}",
                    4.0,
                    0.6,
                    0.006,
                    0.01,
                    "product loaded",
                    &[],
                ),
                0.03,
                404,
            ),
            op(
                "SearchProducts",
                "GET",
                "/products/search",
                35.0,
                0.9,
                0.012,
                0.05,
                "search executed",
                &[],
            ),
        ],
    },
    Service {
        name: "cart",
        operations: &[
            op(
                "GetCart",
                "GET",
                "/carts/{customer_id}",
                2.5,
                0.5,
                0.006,
                0.0,
                "",
                &[],
            ),
            op(
                "AddItem",
                "POST",
                "/carts/{customer_id}/items",
                5.0,
                0.6,
                0.008,
                0.1,
                "cart updated",
                &[call(CATALOG, 1)],
            ),
            op(
                "EmptyCart",
                "DELETE",
                "/carts/{customer_id}",
                3.0,
                0.5,
                0.006,
                0.0,
                "",
                &[],
            ),
        ],
    },
    Service {
        name: "checkout",
        operations: &[op(
            "PlaceOrder",
            "POST",
            "/orders",
            25.0,
            0.6,
            0.01,
            0.6,
            "order placed",
            &[
                call(CART, 0),
                Call {
                    service: CATALOG,
                    operation: 1,
                    probability: 1.0,
                    max_repeat: 4,
                },
                call(SHIPPING, 0),
                call(PAYMENT, 0),
                call(SHIPPING, 1),
                call(CART, 2),
                maybe(EMAIL, 0, 0.9),
            ],
        )],
    },
    Service {
        name: "payment",
        operations: &[
            op(
                "Charge",
                "POST",
                "/charges",
                60.0,
                0.5,
                0.02,
                0.5,
                "card charged",
                &[call(PAYMENT, 1)],
            ),
            op(
                "FraudCheck",
                "POST",
                "/fraud/score",
                12.0,
                0.7,
                0.004,
                0.1,
                "fraud score computed",
                &[],
            ),
        ],
    },
    Service {
        name: "shipping",
        operations: &[
            op("GetQuote", "GET", "/quotes", 8.0, 0.6, 0.006, 0.0, "", &[]),
            op(
                "ShipOrder",
                "POST",
                "/shipments",
                20.0,
                0.7,
                0.008,
                0.3,
                "shipment created",
                &[],
            ),
        ],
    },
    Service {
        name: "email",
        operations: &[op(
            "SendConfirmation",
            "POST",
            "/send",
            40.0,
            0.8,
            0.016,
            0.3,
            "confirmation e-mail queued",
            &[],
        )],
    },
];

/// Regions and the share of traffic each serves.
pub const REGIONS: [(&str, f64); 4] = [
    ("us-east-1", 0.40),
    ("us-west-2", 0.25),
    ("eu-west-1", 0.25),
    ("ap-southeast-1", 0.10),
];

/// Hosts per service and region (`host.name` = `<service>-<region>-<n>`).
pub const HOSTS_PER_REGION: u32 = 4;

/// Most spans one call of `operation` of `service` can produce, itself included.
pub fn max_spans(service: ServiceId, operation: usize) -> usize {
    let op = &SERVICES[service].operations[operation];
    1 + op
        .calls
        .iter()
        .map(|c| c.max_repeat as usize * max_spans(c.service, c.operation))
        .sum::<usize>()
}

/// Most spans one trace can have.
pub fn max_trace_spans() -> usize {
    (0..SERVICES[FRONTEND].operations.len())
        .map(|op| max_spans(FRONTEND, op))
        .max()
        .unwrap_or(1)
}

/// Dataset names of every service, in [`ServiceId`] order.
pub fn dataset_names() -> Vec<&'static str> {
    SERVICES.iter().map(|s| s.name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_call_points_at_an_existing_operation() {
        for service in &SERVICES {
            assert!(
                (1..=4).contains(&service.operations.len()),
                "{}",
                service.name
            );
            for op in service.operations {
                for c in op.calls {
                    assert!(c.operation < SERVICES[c.service].operations.len());
                    assert!(c.max_repeat >= 1);
                }
            }
        }
    }

    #[test]
    fn checkout_is_the_largest_trace() {
        // frontend + auth + PlaceOrder + GetCart + 4 GetProduct + GetQuote
        // + Charge + FraudCheck + ShipOrder + EmptyCart + SendConfirmation
        assert_eq!(max_trace_spans(), 14);
    }

    #[test]
    fn weights_sum_to_one() {
        let roots: f64 = ROOT_WEIGHTS.iter().sum();
        let regions: f64 = REGIONS.iter().map(|r| r.1).sum();
        assert!((roots - 1.0).abs() < 1e-9);
        assert!((regions - 1.0).abs() < 1e-9);
        assert_eq!(ROOT_WEIGHTS.len(), SERVICES[FRONTEND].operations.len());
    }
}
