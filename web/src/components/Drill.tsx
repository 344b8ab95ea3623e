// Behind a point, a cell or a group: its exemplars (with their traces) and its raw events.

import { useEffect, useMemo, useState } from "preact/hooks";
import { api, type Cell, type RawEvent } from "../api";
import { cellText, formatNumber } from "../format";
import { linkClick } from "../router";
import type { Exemplar, QuerySpec, Scalar } from "../spec";
import { ErrorBox, Progress, useTask } from "../task";
import { traceUrl } from "./TracePage";

const PAGE = 50;
/** Fields shown first in the events table, when present. */
const LEADING = ["service.name", "name", "duration_ms", "http.route", "http.status_code", "error", "trace.trace_id"];
const MAX_COLUMNS = 9;
/** Raw events shown when a point or cell has no exemplars. */
const FALLBACK_EXEMPLARS = 5;

function TraceLink({ traceId }: { traceId: string }) {
  const href = traceUrl(traceId);
  return <a href={href} data-testid="trace-link" onClick={(e) => linkClick(e as MouseEvent, href)}>{traceId.slice(0, 16)}…</a>;
}

/** Exemplars of a point or cell. When the server kept none, the first raw events
 * behind it stand in for them, so there is always a way to a trace. */
export function ExemplarList({ exemplars, fallback }: { exemplars: Exemplar[]; fallback?: EventsTarget }) {
  const task = useTask<Exemplar[]>();
  useEffect(() => {
    if (exemplars.length || !fallback) return;
    const column = fallback.cell?.column ?? fallback.query.calculations.find((c) => c.column)?.column;
    void task.run(async (signal) => {
      const page = await api.events(fallback.dataset,
        { query: fallback.query, group: fallback.group, cell: fallback.cell, limit: FALLBACK_EXEMPLARS, cursor: null }, signal);
      return page.events.map((e) => ({
        dataset: typeof e.fields["meta.dataset"] === "string" ? (e.fields["meta.dataset"] as string) : fallback.dataset,
        timestamp: e.timestamp,
        trace_id: typeof e.fields["trace.trace_id"] === "string" ? (e.fields["trace.trace_id"] as string) : null,
        span_id: typeof e.fields["trace.span_id"] === "string" ? (e.fields["trace.span_id"] as string) : null,
        value: column && typeof e.fields[column] === "number" ? (e.fields[column] as number) : null,
      }));
    });
  }, [exemplars, fallback]);
  const shown = exemplars.length ? exemplars : task.data ?? [];
  return (
    <>
      <Progress running={task.running} onCancel={task.cancel} label="Finding events" />
      <ErrorBox error={task.error} />
      {!exemplars.length && shown.length > 0 && <p class="muted small">No exemplars were kept here; these are its latest events.</p>}
      {!shown.length && !task.running && <p class="muted">No exemplars were kept for this selection.</p>}
      {shown.length > 0 && (
        <table class="data" data-testid="exemplars">
          <thead><tr><th>time</th><th>dataset</th><th class="num">value</th><th>trace</th></tr></thead>
          <tbody>
            {shown.map((e, i) => (
              <tr key={i}>
                <td>{e.timestamp}</td>
                <td>{e.dataset ?? ""}</td>
                <td class="num">{formatNumber(e.value)}</td>
                <td>{e.trace_id ? <TraceLink traceId={e.trace_id} /> : <span class="muted">no trace</span>}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}

export interface EventsTarget {
  dataset: string;
  query: QuerySpec;
  group: Record<string, Scalar> | null;
  cell: Cell | null;
}

export function EventsView({ target }: { target: EventsTarget }) {
  const task = useTask<{ events: RawEvent[]; next_cursor: string | null }>();
  const [events, setEvents] = useState<RawEvent[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [open, setOpen] = useState<number | null>(null);

  const load = async (from: string | null) => {
    const page = await task.run((signal) => api.events(target.dataset,
      { query: target.query, group: target.group, cell: target.cell, limit: PAGE, cursor: from }, signal));
    if (!page) return;
    setEvents((previous) => (from ? [...previous, ...page.events] : page.events));
    setCursor(page.next_cursor);
  };

  useEffect(() => {
    setEvents([]);
    setCursor(null);
    setOpen(null);
    void load(null);
  }, [target]);

  const columns = useMemo(() => {
    const counts = new Map<string, number>();
    for (const e of events) for (const k of Object.keys(e.fields)) counts.set(k, (counts.get(k) ?? 0) + 1);
    const leading = LEADING.filter((k) => counts.has(k));
    const rest = [...counts.entries()].filter(([k]) => !leading.includes(k) && k !== "timestamp")
      .sort((a, b) => b[1] - a[1]).map(([k]) => k);
    return [...leading, ...rest].slice(0, MAX_COLUMNS);
  }, [events]);

  return (
    <div data-testid="events-view">
      <Progress running={task.running} onCancel={task.cancel} label="Loading events" />
      <ErrorBox error={task.error} />
      {!task.running && !task.error && events.length === 0 && <p class="muted">No events.</p>}
      {events.length > 0 && (
        <div class="table-wrap">
          <table class="data" data-testid="events-table">
            <thead><tr><th>timestamp</th>{columns.map((c) => <th key={c}>{c}</th>)}</tr></thead>
            <tbody>
              {events.map((event, i) => (
                <>
                  <tr key={i} class="clickable" tabIndex={0} onClick={() => setOpen(open === i ? null : i)}
                    onKeyDown={(e) => { if (e.key === "Enter") setOpen(open === i ? null : i); }}>
                    <td>{event.timestamp}</td>
                    {columns.map((c) => (
                      <td key={c} class={typeof event.fields[c] === "number" ? "num" : ""}>
                        {c === "trace.trace_id" && typeof event.fields[c] === "string"
                          ? <TraceLink traceId={event.fields[c] as string} />
                          : cellText(event.fields[c])}
                      </td>
                    ))}
                  </tr>
                  {open === i && (
                    <tr key={`${i}-detail`} class="detail">
                      <td colSpan={columns.length + 1}>
                        <pre>{JSON.stringify(event.fields, null, 2)}</pre>
                      </td>
                    </tr>
                  )}
                </>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {cursor && <button type="button" onClick={() => load(cursor)} disabled={task.running}>Load more</button>}
    </div>
  );
}
