// The query spec (Honeycomb's shape, see docs/query.md) and the response of
// POST /api/v1/query/{dataset}, plus the spec's place in the URL.

import type {
  CalculatedField, Calculation, Exemplar, Filter, Group, Having, Heatmap, HeatmapBucket, HeatmapCell, Order,
  QueryResult, QuerySpec as SpecJson, SeriesPoint,
} from "./generated";

// The JSON shapes are generated from the Rust types (web/src/generated, see the
// README's Tests section); only the UI's own state is declared here.
export type {
  CalculatedField, Calculation, Exemplar, Filter, Having, HeatmapBucket, HeatmapCell, Order, QueryResult,
  SeriesPoint, SpecJson,
};
export type ResultGroup = Group;
export type HeatmapResult = Heatmap;

export type Scalar = string | number | boolean | null;

/** The builder's spec: every clause present, times as epoch seconds. */
export interface QuerySpec {
  calculations: Calculation[];
  filters: Filter[];
  filter_combination: "AND" | "OR";
  breakdowns: string[];
  orders: Order[];
  havings: Having[];
  limit?: number;
  time_range?: number;
  start_time?: number;
  end_time?: number;
  granularity?: number;
  /** Named expressions usable as columns (links from the SLO page carry the SLI). */
  calculated_fields?: CalculatedField[];
}

/**
 * What the page is asked to show: a dataset and a spec, and optionally a BubbleUp
 * selection (the API's `selection`: a box or `{"group": {...}}`) to open once the
 * query has run.
 */
export interface QueryState { dataset: string; spec: QuerySpec; bubbleup?: unknown }

export const ALL_DATASETS = "__all__";

/** Every calculation Honeycomb offers, in its menu order. */
export const CALCULATION_OPS = [
  "COUNT", "CONCURRENCY", "SUM", "AVG", "COUNT_DISTINCT", "HEATMAP", "MAX", "MIN",
  "P001", "P01", "P05", "P10", "P20", "P25", "P50", "P75", "P80", "P90", "P95", "P99", "P999",
  "RATE_AVG", "RATE_SUM", "RATE_MAX",
] as const;

/** Calculations that take no column. */
export const COLUMNLESS_OPS = new Set(["COUNT", "CONCURRENCY"]);

/** Every filter operator, with words for the menu. */
export const FILTER_OPS: Array<[string, string]> = [
  ["=", "="], ["!=", "!="], [">", ">"], [">=", ">="], ["<", "<"], ["<=", "<="],
  ["starts-with", "starts with"], ["does-not-start-with", "does not start with"],
  ["ends-with", "ends with"], ["does-not-end-with", "does not end with"],
  ["contains", "contains"], ["does-not-contain", "does not contain"],
  ["exists", "exists"], ["does-not-exist", "does not exist"],
  ["in", "in"], ["not-in", "not in"],
];

/** Operators that take no value. */
export const VALUELESS_FILTER_OPS = new Set(["exists", "does-not-exist"]);
/** Operators whose value is a list. */
export const LIST_FILTER_OPS = new Set(["in", "not-in"]);

export const HAVING_OPS = ["=", "!=", ">", ">=", "<", "<="];

/** Time range presets, in seconds. */
export const TIME_PRESETS: Array<[number, string]> = [
  [600, "Last 10 minutes"], [1800, "Last 30 minutes"], [3600, "Last hour"],
  [7200, "Last 2 hours"], [21600, "Last 6 hours"], [86400, "Last 24 hours"],
  [604800, "Last 7 days"],
];

/** Granularities offered (seconds); 0 = automatic. */
export const GRANULARITIES: Array<[number, string]> = [
  [0, "auto"], [1, "1s"], [5, "5s"], [10, "10s"], [15, "15s"], [30, "30s"], [60, "1m"],
  [300, "5m"], [600, "10m"], [900, "15m"], [1800, "30m"], [3600, "1h"], [21600, "6h"],
  [86400, "1d"],
];

export const DEFAULT_TIME_RANGE = 7200;

export function defaultSpec(): QuerySpec {
  return {
    calculations: [{ op: "COUNT" }],
    filters: [],
    filter_combination: "AND",
    breakdowns: [],
    orders: [],
    havings: [],
    time_range: DEFAULT_TIME_RANGE,
  };
}

/** The response's name of a calculation: `COUNT`, `CONCURRENCY` or `OP(column)`. */
export function calculationName(calc: { op: string; column?: string | null }): string {
  return COLUMNLESS_OPS.has(calc.op) || !calc.column ? calc.op : `${calc.op}(${calc.column})`;
}

/** The spec as sent: empty clauses and UI-only defaults left out. */
export function cleanSpec(spec: QuerySpec): SpecJson {
  const out: SpecJson = {
    calculations: spec.calculations.map((c) =>
      COLUMNLESS_OPS.has(c.op) ? { op: c.op } : { op: c.op, column: c.column ?? "" }),
  };
  if (spec.filters.length) {
    out.filters = spec.filters.map((f) =>
      VALUELESS_FILTER_OPS.has(f.op) ? { column: f.column, op: f.op } : f);
    out.filter_combination = spec.filter_combination;
  }
  if (spec.breakdowns.length) out.breakdowns = spec.breakdowns;
  if (spec.orders.length) out.orders = spec.orders;
  if (spec.havings.length) out.havings = spec.havings;
  if (spec.limit) out.limit = spec.limit;
  if (spec.start_time !== undefined && spec.end_time !== undefined) {
    out.start_time = spec.start_time;
    out.end_time = spec.end_time;
  } else {
    out.time_range = spec.time_range ?? DEFAULT_TIME_RANGE;
  }
  if (spec.granularity) out.granularity = spec.granularity;
  if (spec.calculated_fields?.length) out.calculated_fields = spec.calculated_fields;
  return out;
}

/** Reads a spec from any JSON, keeping only well-formed parts (URLs can be edited by hand). */
export function parseSpec(raw: unknown): QuerySpec {
  const spec = defaultSpec();
  if (!raw || typeof raw !== "object") return spec;
  const r = raw as Record<string, unknown>;
  const arr = (v: unknown): Record<string, unknown>[] =>
    Array.isArray(v) ? v.filter((x) => x && typeof x === "object") as Record<string, unknown>[] : [];
  const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);
  const num = (v: unknown): number | undefined =>
    typeof v === "number" && Number.isFinite(v) ? v : undefined;
  const calcs = arr(r.calculations)
    .filter((c) => typeof c.op === "string")
    .map((c) => ({ op: String(c.op), column: str(c.column) }));
  if (calcs.length) spec.calculations = calcs;
  spec.filters = arr(r.filters)
    .filter((f) => typeof f.column === "string" && typeof f.op === "string")
    .map((f) => ({ column: String(f.column), op: String(f.op), value: f.value as Scalar | Scalar[] }));
  spec.filter_combination = r.filter_combination === "OR" ? "OR" : "AND";
  spec.breakdowns = Array.isArray(r.breakdowns) ? r.breakdowns.filter((b) => typeof b === "string") : [];
  spec.orders = arr(r.orders).map((o) => ({
    op: str(o.op), column: str(o.column),
    order: o.order === "ascending" ? "ascending" : "descending",
  }));
  spec.havings = arr(r.havings)
    .filter((h) => typeof h.calculate_op === "string" && typeof h.op === "string")
    .map((h) => ({
      calculate_op: String(h.calculate_op), column: str(h.column), op: String(h.op),
      value: num(h.value) ?? 0,
    }));
  const fields = arr(r.calculated_fields)
    .filter((f) => typeof f.name === "string" && typeof f.expression === "string")
    .map((f) => ({ name: String(f.name), expression: String(f.expression) }));
  if (fields.length) spec.calculated_fields = fields;
  spec.limit = num(r.limit);
  spec.granularity = num(r.granularity);
  const start = num(r.start_time);
  const end = num(r.end_time);
  if (start !== undefined && end !== undefined && end > start) {
    spec.start_time = start;
    spec.end_time = end;
    spec.time_range = undefined;
  } else {
    spec.time_range = num(r.time_range) ?? DEFAULT_TIME_RANGE;
  }
  return spec;
}

/**
 * `?dataset=...&query=<json>`: readable, editable permalinks; `&bubbleup=<json>`
 * also opens BubbleUp of that selection against the rest of the query's events.
 */
export function stateToSearch(state: QueryState): string {
  const params = new URLSearchParams();
  params.set("dataset", state.dataset);
  params.set("query", JSON.stringify(cleanSpec(state.spec)));
  if (state.bubbleup !== undefined) params.set("bubbleup", JSON.stringify(state.bubbleup));
  return "?" + params.toString();
}

/** The BubbleUp selection of a URL's `bubbleup` parameter, if it is a JSON object. */
function bubbleupFromSearch(params: URLSearchParams): unknown {
  const text = params.get("bubbleup");
  if (!text) return undefined;
  try {
    const value: unknown = JSON.parse(text);
    return value && typeof value === "object" && !Array.isArray(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

export function stateFromSearch(search: string, fallbackDataset: string): QueryState | null {
  const params = new URLSearchParams(search);
  const dataset = params.get("dataset");
  const query = params.get("query");
  if (!dataset && !query) return null;
  let raw: unknown = {};
  try {
    raw = query ? JSON.parse(query) : {};
  } catch {
    raw = {};
  }
  const state: QueryState = { dataset: dataset || fallbackDataset, spec: parseSpec(raw) };
  const bubbleup = bubbleupFromSearch(params);
  if (bubbleup !== undefined) state.bubbleup = bubbleup;
  return state;
}

// ---------------------------------------------------------------- response

export type GroupKey = Record<string, Scalar>;

/** A stable text key of a group (for colours, lookups and selection). */
export function groupId(key: GroupKey, breakdowns: string[]): string {
  return JSON.stringify(breakdowns.map((b) => key[b] ?? null));
}

/** The group's values joined for people. */
export function groupLabel(key: GroupKey, breakdowns: string[]): string {
  if (!breakdowns.length) return "all events";
  return breakdowns.map((b) => (key[b] === null || key[b] === undefined ? "(none)" : String(key[b]))).join(" · ");
}

/** The spec pinned to the absolute time range a result covered. */
export function pinnedSpec(spec: QuerySpec, result: QueryResult): QuerySpec {
  return { ...spec, start_time: result.start_time, end_time: result.end_time, time_range: undefined };
}
