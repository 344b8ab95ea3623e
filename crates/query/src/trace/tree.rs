//! Building a trace's span tree from its rows: a pure function, no I/O.
//!
//! Rows are classified by the OpenTelemetry mapping of DESIGN.md:
//! `meta.annotation_type` = `span_event` / `link` rows and `meta.signal_type` = `log`
//! rows attach to the span named by their `trace.parent_id` (logs also by
//! `trace.span_id`); the same fields sent through the Events API, stored as
//! `meta.annotation_type#user` / `meta.signal_type#user`, count too; any other row with a `trace.span_id` is a span. Spans link to
//! their parent by `trace.parent_id` -> `trace.span_id`. A span whose parent is not
//! in the trace is an *orphan* and becomes a root of the forest, as does a span that
//! closes a parent cycle.
//!
//! The tree is returned flat, in depth-first (waterfall) order, each span naming its
//! children: a deep trace cannot exhaust the stack while building or serializing it.

use std::collections::HashMap;

use quarry_schema::fields::{
    ANNOTATION_LINK, ANNOTATION_SPAN_EVENT, ANNOTATION_TYPE, DURATION_MS, ERROR, NAME, PARENT_ID,
    SERVICE_NAME, SIGNAL_LOG, SIGNAL_TYPE, SPAN_ID,
};
use serde::Serialize;
use serde_json::{Map, Value};

/// Nanoseconds per millisecond.
const NANOS_PER_MS: f64 = 1_000_000.0;

/// One row of a trace: its event time and every non-null column.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceRow {
    /// `timestamp` in nanoseconds since the epoch (a span's start).
    pub timestamp_ns: i64,
    /// Column name -> value, null columns left out.
    pub fields: Map<String, Value>,
}

/// A whole trace, its spans in depth-first order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trace {
    /// The trace id looked up.
    pub trace_id: String,
    /// Earliest row time, RFC 3339.
    pub start_time: String,
    /// From the earliest span start to the latest span end (0 without spans).
    pub duration_ms: f64,
    /// Rows of the trace found (spans, events, links, logs, others).
    pub row_count: usize,
    /// Whether rows beyond the lookup's limit were left out.
    pub truncated: bool,
    /// Span ids of the roots (true roots and orphans), in start order.
    pub roots: Vec<String>,
    /// Every span, depth-first from each root, children in start order.
    pub spans: Vec<TraceSpan>,
    /// Events, links, logs and other rows whose span is not in the trace.
    pub unattached: Vec<Annotation>,
}

/// One span with its place in the tree.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TraceSpan {
    /// `trace.span_id`.
    pub span_id: String,
    /// `trace.parent_id`, if the row has one (even when that span is missing).
    pub parent_id: Option<String>,
    /// `name`.
    pub name: Option<String>,
    /// `service.name`.
    pub service_name: Option<String>,
    /// The dataset the row came from (`meta.dataset`).
    pub dataset: Option<String>,
    /// Span start, RFC 3339.
    pub timestamp: String,
    /// Start relative to the trace start.
    pub start_offset_ms: f64,
    /// `duration_ms` (0 when absent).
    pub duration_ms: f64,
    /// Duration minus the union of the children's intervals clipped to this span.
    pub self_time_ms: f64,
    /// 0 for roots.
    pub depth: usize,
    /// The span names a parent that is not in the trace (or closes a cycle).
    pub orphan: bool,
    /// `error` is true.
    pub error: bool,
    /// Child span ids, in start order.
    pub children: Vec<String>,
    /// Span event rows, in time order.
    pub events: Vec<Annotation>,
    /// Link rows.
    pub links: Vec<Annotation>,
    /// Log rows.
    pub logs: Vec<Annotation>,
    /// Every non-null column of the span's row.
    pub fields: Map<String, Value>,
}

/// A row attached to a span (or to nothing): its time and columns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Annotation {
    /// Row time, RFC 3339.
    pub timestamp: String,
    /// Every non-null column of the row.
    pub fields: Map<String, Value>,
}

/// What a row is in a trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RowKind {
    Span,
    SpanEvent,
    Link,
    Log,
    Other,
}

fn classify(fields: &Map<String, Value>) -> RowKind {
    match meta_text(fields, ANNOTATION_TYPE).as_deref() {
        Some(ANNOTATION_SPAN_EVENT) => return RowKind::SpanEvent,
        Some(ANNOTATION_LINK) => return RowKind::Link,
        _ => {}
    }
    if meta_text(fields, SIGNAL_TYPE).as_deref() == Some(SIGNAL_LOG) {
        return RowKind::Log;
    }
    if text(fields, SPAN_ID).is_some() {
        RowKind::Span
    } else {
        RowKind::Other
    }
}

/// A `meta.` column as text, or else the user's field of that name: events sent
/// through the Events API (e.g. by a Beeline, which sets `meta.annotation_type`)
/// have it renamed to `<name>#user` on ingest.
fn meta_text(fields: &Map<String, Value>, name: &str) -> Option<String> {
    text(fields, name).or_else(|| text(fields, &quarry_schema::user_field_name(name)))
}

/// A column as text: strings as they are, numbers and bools printed; empty is none.
fn text(fields: &Map<String, Value>, name: &str) -> Option<String> {
    match fields.get(name)? {
        Value::String(value) if !value.is_empty() => Some(value.clone()),
        Value::Number(value) => Some(value.to_string()),
        Value::Bool(value) => Some(value.to_string()),
        _ => None,
    }
}

fn rfc3339(nanos: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(nanos)
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

fn annotation(row: TraceRow) -> Annotation {
    Annotation {
        timestamp: rfc3339(row.timestamp_ns),
        fields: row.fields,
    }
}

/// Milliseconds of `[start, end]` not covered by `intervals` (each clipped to it).
pub fn uncovered_ms(start: f64, end: f64, intervals: &mut [(f64, f64)]) -> f64 {
    intervals.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut covered = 0.0;
    let mut cursor = start;
    for &(from, to) in intervals.iter() {
        let from = from.max(cursor);
        let to = to.min(end);
        if to > from {
            covered += to - from;
            cursor = to;
        }
    }
    ((end - start) - covered).max(0.0)
}

/// Builds the trace `trace_id` from its rows; `truncated` says rows were cut off.
pub fn build_trace(trace_id: &str, rows: Vec<TraceRow>, truncated: bool) -> Trace {
    let row_count = rows.len();
    let trace_start = rows.iter().map(|row| row.timestamp_ns).min().unwrap_or(0);
    let mut spans: Vec<TraceRow> = Vec::new();
    let mut attached: Vec<(RowKind, TraceRow)> = Vec::new();
    for row in rows {
        match classify(&row.fields) {
            RowKind::Span => spans.push(row),
            kind => attached.push((kind, row)),
        }
    }
    spans.sort_by(|a, b| {
        (a.timestamp_ns, text(&a.fields, SPAN_ID)).cmp(&(b.timestamp_ns, text(&b.fields, SPAN_ID)))
    });
    attached.sort_by_key(|(_, row)| row.timestamp_ns);

    let mut nodes: Vec<TraceSpan> = spans
        .into_iter()
        .map(|row| span_node(row, trace_start))
        .collect();
    // The first span (in start order) with an id owns it.
    let mut index: HashMap<String, usize> = HashMap::new();
    for (position, node) in nodes.iter().enumerate() {
        index.entry(node.span_id.clone()).or_insert(position);
    }

    let mut unattached = Vec::new();
    for (kind, row) in attached {
        let owner = text(&row.fields, PARENT_ID)
            .or_else(|| {
                (kind == RowKind::Log)
                    .then(|| text(&row.fields, SPAN_ID))
                    .flatten()
            })
            .and_then(|id| index.get(&id).copied());
        match (kind, owner) {
            (RowKind::SpanEvent, Some(owner)) => nodes[owner].events.push(annotation(row)),
            (RowKind::Link, Some(owner)) => nodes[owner].links.push(annotation(row)),
            (RowKind::Log, Some(owner)) => nodes[owner].logs.push(annotation(row)),
            _ => unattached.push(annotation(row)),
        }
    }

    let parents: Vec<Option<usize>> = nodes
        .iter()
        .enumerate()
        .map(|(position, node)| {
            let parent = index.get(node.parent_id.as_deref()?).copied()?;
            (parent != position).then_some(parent)
        })
        .collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    for (position, parent) in parents.iter().enumerate() {
        if let Some(parent) = parent {
            children[*parent].push(position);
        }
    }
    for (position, node) in nodes.iter_mut().enumerate() {
        node.orphan = node.parent_id.is_some() && parents[position].is_none();
    }

    // Depth-first from each root; a span never reached sits on a parent cycle:
    // cut the edge to its parent and make it a root too.
    let mut order: Vec<usize> = Vec::with_capacity(nodes.len());
    let mut roots: Vec<usize> = Vec::new();
    let mut visited = vec![false; nodes.len()];
    let mut depth = vec![0usize; nodes.len()];
    let true_roots = (0..nodes.len()).filter(|&position| parents[position].is_none());
    let pending: Vec<usize> = true_roots.chain(0..nodes.len()).collect();
    for start in pending {
        if visited[start] {
            continue;
        }
        if let Some(parent) = parents[start] {
            // Only spans on a cycle are left once every true root was walked.
            children[parent].retain(|&child| child != start);
            nodes[start].orphan = true;
        }
        roots.push(start);
        let mut stack = vec![(start, 0usize)];
        while let Some((position, level)) = stack.pop() {
            if visited[position] {
                continue;
            }
            visited[position] = true;
            depth[position] = level;
            order.push(position);
            for &child in children[position].iter().rev() {
                if !visited[child] {
                    stack.push((child, level + 1));
                }
            }
        }
    }

    let bounds: Vec<(f64, f64)> = nodes
        .iter()
        .map(|node| {
            (
                node.start_offset_ms,
                node.start_offset_ms + node.duration_ms,
            )
        })
        .collect();
    for position in 0..nodes.len() {
        let (start, end) = bounds[position];
        let mut intervals: Vec<(f64, f64)> = children[position]
            .iter()
            .map(|&child| bounds[child])
            .collect();
        nodes[position].self_time_ms = uncovered_ms(start, end, &mut intervals);
        nodes[position].depth = depth[position];
        nodes[position].children = children[position]
            .iter()
            .map(|&child| nodes[child].span_id.clone())
            .collect();
    }
    let span_start = bounds.iter().map(|b| b.0).fold(f64::INFINITY, f64::min);
    let span_end = bounds.iter().map(|b| b.1).fold(f64::NEG_INFINITY, f64::max);
    let duration_ms = if nodes.is_empty() {
        0.0
    } else {
        span_end - span_start
    };

    let root_ids = roots
        .iter()
        .map(|&root| nodes[root].span_id.clone())
        .collect();
    let mut slots: Vec<Option<TraceSpan>> = nodes.into_iter().map(Some).collect();
    let spans = order
        .into_iter()
        .filter_map(|position| slots[position].take())
        .collect();
    Trace {
        trace_id: trace_id.to_owned(),
        start_time: rfc3339(trace_start),
        duration_ms,
        row_count,
        truncated,
        roots: root_ids,
        spans,
        unattached,
    }
}

fn span_node(row: TraceRow, trace_start: i64) -> TraceSpan {
    let fields = row.fields;
    let duration_ms = fields
        .get(DURATION_MS)
        .and_then(Value::as_f64)
        .filter(|duration| duration.is_finite() && *duration > 0.0)
        .unwrap_or(0.0);
    TraceSpan {
        span_id: text(&fields, SPAN_ID).unwrap_or_default(),
        parent_id: text(&fields, PARENT_ID),
        name: text(&fields, NAME),
        service_name: text(&fields, SERVICE_NAME),
        dataset: text(&fields, quarry_engine::DATASET_COLUMN),
        timestamp: rfc3339(row.timestamp_ns),
        start_offset_ms: (row.timestamp_ns - trace_start) as f64 / NANOS_PER_MS,
        duration_ms,
        self_time_ms: duration_ms,
        depth: 0,
        orphan: false,
        error: fields.get(ERROR).and_then(Value::as_bool).unwrap_or(false),
        children: Vec::new(),
        events: Vec::new(),
        links: Vec::new(),
        logs: Vec::new(),
        fields,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const T0: i64 = 1_700_000_000_000_000_000;
    const MS: i64 = 1_000_000;

    fn row(offset_ms: i64, fields: Value) -> TraceRow {
        let Value::Object(fields) = fields else {
            panic!("fields must be an object")
        };
        TraceRow {
            timestamp_ns: T0 + offset_ms * MS,
            fields,
        }
    }

    fn span(id: &str, parent: Option<&str>, offset_ms: i64, duration_ms: f64) -> TraceRow {
        let mut fields =
            json!({"trace.span_id": id, "name": format!("op-{id}"), "duration_ms": duration_ms});
        if let Some(parent) = parent {
            fields["trace.parent_id"] = json!(parent);
        }
        row(offset_ms, fields)
    }

    fn find<'a>(trace: &'a Trace, id: &str) -> &'a TraceSpan {
        trace.spans.iter().find(|s| s.span_id == id).unwrap()
    }

    #[test]
    fn self_time_subtracts_the_union_of_clipped_children() {
        // Parent [0, 100]; children [10, 40], [30, 60] overlap; [90, 130] runs past
        // the end: covered = [10, 60] + [90, 100] = 60.
        let mut intervals = vec![(30.0, 60.0), (10.0, 40.0), (90.0, 130.0)];
        assert_eq!(uncovered_ms(0.0, 100.0, &mut intervals), 40.0);
        let mut none = vec![];
        assert_eq!(uncovered_ms(5.0, 7.5, &mut none), 2.5);
        let mut all = vec![(-10.0, 200.0)];
        assert_eq!(uncovered_ms(0.0, 100.0, &mut all), 0.0);
    }

    #[test]
    fn spans_form_a_depth_first_tree_with_depths_and_self_times() {
        let rows = vec![
            span("c", Some("b"), 20, 10.0),
            span("a", None, 0, 100.0),
            span("b", Some("a"), 10, 50.0),
            span("d", Some("a"), 70, 20.0),
            row(
                25,
                json!({"meta.annotation_type": "span_event", "trace.parent_id": "c", "name": "retry"}),
            ),
            row(
                0,
                json!({"meta.annotation_type": "link", "trace.parent_id": "a", "trace.link.trace_id": "other"}),
            ),
            row(
                30,
                json!({"meta.signal_type": "log", "trace.parent_id": "b", "body": "hello"}),
            ),
            row(
                31,
                json!({"meta.annotation_type#user": "span_event", "trace.parent_id": "b"}),
            ),
        ];
        let trace = build_trace("t", rows, false);
        let ids: Vec<&str> = trace.spans.iter().map(|s| s.span_id.as_str()).collect();
        assert_eq!(ids, vec!["a", "b", "c", "d"]);
        assert_eq!(trace.roots, vec!["a"]);
        assert_eq!(trace.row_count, 8);
        assert_eq!(find(&trace, "b").events.len(), 1);
        assert_eq!(trace.duration_ms, 100.0);
        let depths: Vec<usize> = trace.spans.iter().map(|s| s.depth).collect();
        assert_eq!(depths, vec![0, 1, 2, 1]);
        assert_eq!(find(&trace, "a").children, vec!["b", "d"]);
        assert_eq!(find(&trace, "a").self_time_ms, 30.0);
        assert_eq!(find(&trace, "b").self_time_ms, 40.0);
        assert_eq!(find(&trace, "c").self_time_ms, 10.0);
        assert_eq!(find(&trace, "c").start_offset_ms, 20.0);
        assert_eq!(find(&trace, "c").events.len(), 1);
        assert_eq!(find(&trace, "a").links.len(), 1);
        assert_eq!(find(&trace, "b").logs[0].fields["body"], json!("hello"));
        assert!(trace.spans.iter().all(|s| !s.orphan));
        assert!(trace.unattached.is_empty());
    }

    #[test]
    fn spans_with_missing_parents_are_flagged_orphan_roots() {
        let rows = vec![
            span("x", Some("missing-root"), 5, 10.0),
            span("y", Some("x"), 6, 2.0),
            span("z", None, 0, 1.0),
            row(
                7,
                json!({"meta.annotation_type": "span_event", "trace.parent_id": "gone"}),
            ),
        ];
        let trace = build_trace("t", rows, false);
        assert_eq!(trace.roots, vec!["z", "x"]);
        let ids: Vec<&str> = trace.spans.iter().map(|s| s.span_id.as_str()).collect();
        assert_eq!(ids, vec!["z", "x", "y"]);
        assert!(find(&trace, "x").orphan);
        assert_eq!(find(&trace, "x").depth, 0);
        assert_eq!(find(&trace, "x").parent_id.as_deref(), Some("missing-root"));
        assert!(!find(&trace, "y").orphan);
        assert_eq!(find(&trace, "y").depth, 1);
        assert!(!find(&trace, "z").orphan);
        assert_eq!(trace.unattached.len(), 1);
    }

    #[test]
    fn a_parent_cycle_is_cut_and_every_span_appears_once() {
        let rows = vec![
            span("p", Some("q"), 0, 10.0),
            span("q", Some("p"), 1, 5.0),
            span("s", Some("s"), 2, 1.0),
        ];
        let trace = build_trace("t", rows, false);
        assert_eq!(trace.spans.len(), 3);
        assert_eq!(trace.roots, vec!["s", "p"]);
        assert!(find(&trace, "p").orphan);
        assert!(find(&trace, "s").orphan);
        assert_eq!(find(&trace, "q").depth, 1);
        assert!(find(&trace, "q").children.is_empty());
    }

    #[test]
    fn a_deep_chain_builds_without_recursion() {
        let rows = (0..50_000)
            .map(|i| {
                let parent = (i > 0).then(|| format!("s{}", i - 1));
                span(&format!("s{i}"), parent.as_deref(), i, 1.0)
            })
            .collect();
        let trace = build_trace("t", rows, false);
        assert_eq!(trace.spans.last().unwrap().depth, 49_999);
        assert!(serde_json::to_string(&trace).is_ok());
    }
}
