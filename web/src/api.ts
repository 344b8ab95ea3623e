// Calls to the Quarry HTTP API, with errors turned into sentences for people.

import type { DrillDownRequest, Event, EventsPage } from "./generated";
import { cleanSpec, type QueryResult, type QuerySpec, type Scalar, type SpecJson } from "./spec";

/** An API failure with a message fit to show as it is. */
export class ApiError extends Error {
  constructor(message: string, readonly status: number, readonly cancelled = false) {
    super(message);
  }
}

function explain(status: number, serverMessage: string, what: string): string {
  const detail = serverMessage ? `: ${serverMessage}` : "";
  switch (status) {
    case 400: return `Quarry could not run ${what}${detail}`;
    case 401: return "This server needs an API key, and the browser sent none that it knows.";
    case 404: return serverMessage === "no such route"
      ? `This Quarry server does not offer ${what} (it may be an older build).`
      : serverMessage ? serverMessage[0].toUpperCase() + serverMessage.slice(1) : "Not found.";
    case 413: return `The request is too large${detail}`;
    case 429: return "Quarry is busy right now; try again in a moment.";
    case 503: return "Quarry is shutting down; try again once it is back.";
    default: return `Quarry failed while running ${what} (HTTP ${status})${detail}`;
  }
}

async function request(path: string, init: RequestInit, what: string): Promise<Response> {
  let response: Response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    if (error instanceof DOMException && error.name === "AbortError") {
      throw new ApiError("Cancelled.", 0, true);
    }
    throw new ApiError("Cannot reach the Quarry server. Is it running?", 0);
  }
  if (!response.ok) {
    let message = "";
    try {
      const body = await response.json();
      if (body && typeof body.error === "string") message = body.error;
    } catch {
      // Not JSON: the status alone has to do.
    }
    throw new ApiError(explain(response.status, message, what), response.status);
  }
  return response;
}

async function json<T>(path: string, init: RequestInit, what: string): Promise<T> {
  const response = await request(path, init, what);
  try {
    return (await response.json()) as T;
  } catch (error) {
    if (error instanceof DOMException && error.name === "AbortError") {
      throw new ApiError("Cancelled.", 0, true);
    }
    throw new ApiError(`The server's answer to ${what} was not valid JSON.`, response.status);
  }
}

function post(body: unknown, signal?: AbortSignal): RequestInit {
  return { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body), signal };
}

const enc = encodeURIComponent;

/** Epoch seconds of a time the server may send as a number or RFC 3339 text. */
function seconds(value: unknown): number {
  if (typeof value === "number") return value;
  const ms = Date.parse(String(value));
  return Number.isFinite(ms) ? ms / 1000 : 0;
}

/** Every time of a result as epoch seconds (the charts do arithmetic on them). */
function normalizeTimes(result: QueryResult): QueryResult {
  result.start_time = seconds(result.start_time);
  result.end_time = seconds(result.end_time);
  result.series = (result.series ?? []).map((p) => ({ ...p, time: seconds(p.time) }));
  result.groups = result.groups ?? [];
  result.heatmaps = (result.heatmaps ?? []).map((h) => ({
    ...h,
    times: (h.times ?? []).map(seconds),
    cells: (h.cells ?? []).map((c) => ({ ...c, time: seconds(c.time) })),
  }));
  return result;
}

export interface Column { key_name: string; type: string }

export const api = {
  datasets: (signal?: AbortSignal) =>
    json<Array<{ name: string }>>("/1/datasets", { signal }, "the dataset list"),
  columns: (dataset: string, signal?: AbortSignal) =>
    json<Column[]>(`/1/columns/${enc(dataset)}`, { signal }, "the column list"),
  query: async (dataset: string, spec: QuerySpec, signal?: AbortSignal) =>
    normalizeTimes(await json<QueryResult>(`/api/v1/query/${enc(dataset)}`, post(cleanSpec(spec), signal), "this query")),
  events: (dataset: string, body: EventsRequest, signal?: AbortSignal) =>
    json<EventsResponse>(`/api/v1/query/${enc(dataset)}/events`,
      post({ ...body, query: cleanSpec(body.query) } satisfies DrillDownRequest, signal), "the events query"),
  bubbleup: (dataset: string, spec: QuerySpec, selection: unknown, signal?: AbortSignal) =>
    json<BubbleUpResult>(`/api/v1/bubbleup/${enc(dataset)}`,
      post({ query: cleanSpec(spec), selection }, signal), "BubbleUp"),
  trace: (traceId: string, signal?: AbortSignal) =>
    json<TraceResult>(`/api/v1/traces/${enc(traceId)}`, { signal }, "the trace lookup"),
  sql: (sql: string, signal?: AbortSignal) =>
    json<Array<Record<string, unknown>>>("/api/v1/sql", post({ sql, format: "json" }, signal), "this SQL"),
  slos: (dataset: string, signal?: AbortSignal) =>
    json<Slo[]>(`/1/slos/${enc(dataset)}`, { signal }, "the SLO list"),
  slo: (dataset: string, id: string, historyStep: number, signal?: AbortSignal) =>
    json<SloReport>(`/1/slos/${enc(dataset)}/${enc(id)}?history_step=${historyStep}`, { signal }, "the SLO report"),
  burnAlerts: (dataset: string, sloId: string, signal?: AbortSignal) =>
    json<BurnAlert[]>(`/1/burn_alerts/${enc(dataset)}?slo_id=${enc(sloId)}`, { signal }, "the burn alerts"),
  triggers: (dataset: string, signal?: AbortSignal) =>
    json<Trigger[]>(`/1/triggers/${enc(dataset)}`, { signal }, "the trigger list"),
  trigger: (dataset: string, id: string, signal?: AbortSignal) =>
    json<Trigger>(`/1/triggers/${enc(dataset)}/${enc(id)}`, { signal }, "the trigger"),
  sqlCsv: async (sql: string, signal?: AbortSignal): Promise<Blob> =>
    (await request("/api/v1/sql", post({ sql, format: "csv" }, signal), "this SQL")).blob(),
};

// ---------------------------------------------------------------- shapes

export interface Cell {
  column: string; min: number; max: number; start_time: number; end_time: number;
}

export interface EventsRequest {
  query: QuerySpec;
  group: Record<string, Scalar> | null;
  cell: Cell | null;
  limit: number;
  cursor: string | null;
}

export type RawEvent = Event;
export type EventsResponse = EventsPage;

export interface Shares { selection: number; baseline: number }
export interface ValueShares extends Shares { value: Scalar }

export interface ColumnComparison {
  column: string;
  type: string;
  kind: "categorical" | "numeric";
  score: number;
  selection_column: boolean;
  missing: Shares;
  values?: ValueShares[];
  other?: Shares;
  histogram?: { scale: string; edges: number[]; selection: number[]; baseline: number[] };
}

export interface BubbleUpResult {
  selection: { rows: number; weight: number };
  baseline: { rows: number; weight: number };
  sampled: boolean;
  columns: ColumnComparison[];
  skipped: Array<{ column: string; reason: unknown }>;
}

export interface TraceRow { timestamp: string; fields: Record<string, unknown> }

export interface TraceSpan {
  span_id: string;
  parent_id: string | null;
  name: string | null;
  service_name: string | null;
  dataset: string;
  timestamp: string;
  start_offset_ms: number;
  duration_ms: number;
  self_time_ms: number;
  depth: number;
  orphan: boolean;
  error: boolean;
  children: string[];
  events: TraceRow[];
  links: TraceRow[];
  logs: TraceRow[];
  fields: Record<string, unknown>;
}

export interface TraceResult {
  trace_id: string;
  start_time: string;
  duration_ms: number;
  row_count: number;
  truncated: boolean;
  roots: string[];
  spans: TraceSpan[];
  unattached: TraceRow[];
}

// ---------------------------------------------------------------- alerts (docs/alerts.md)

export interface Slo {
  id: string;
  dataset: string;
  name: string;
  description: string;
  sli: { alias: string; expression: string };
  target_per_million: number;
  time_period_days: number;
}

export interface SloHistoryPoint { time: number; good: number; bad: number; compliance: number; budget_remaining: number }

export interface SloReport extends Slo {
  window_start: number;
  window_end: number;
  good: number;
  bad: number;
  compliance: number;
  budget_remaining: number;
  burn_rates: Record<string, number>;
  source: string;
  history: SloHistoryPoint[];
}

export interface BurnWindow { long_minutes: number; short_minutes: number; burn_rate: number; severity: string }

export interface BurnAlert {
  id: string;
  slo: { id: string };
  alert_type: "multiwindow" | "exhaustion_time" | "budget_rate";
  windows?: BurnWindow[];
  exhaustion_minutes?: number;
  budget_rate_window_minutes?: number;
  budget_rate_decrease_threshold_per_million?: number;
  description: string;
  recipients: Array<{ id: string }>;
  triggered: boolean;
  severity: string;
  value: number | null;
}

export interface TriggerHistoryEntry {
  time: string;
  triggered_groups: number;
  value: number | null;
  events: string[];
  error?: string;
}

export interface TriggerTransition {
  time: string;
  status: "triggered" | "resolved";
  group: Record<string, Scalar>;
  value: number | null;
}

export interface Trigger {
  id: string;
  dataset: string;
  name: string;
  description: string;
  disabled: boolean;
  query: SpecJson;
  frequency: number;
  alert_type: "on_change" | "on_true";
  threshold: { op: string; value: number; exceeded_limit: number };
  recipients: Array<{ id: string }>;
  triggered: boolean;
  state: {
    groups: Array<{ group: Record<string, Scalar> | null; triggered: boolean; value: number | null; exceeded: number }>;
    last_evaluated: string | null;
    last_value: number | null;
    history: TriggerHistoryEntry[];
    transitions: TriggerTransition[];
  };
}
