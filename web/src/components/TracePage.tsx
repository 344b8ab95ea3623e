// The trace view: a waterfall of spans coloured by service with collapsible
// subtrees, errors highlighted, and a side panel for the selected span.

import { useEffect, useMemo, useState } from "preact/hooks";
import { api, type TraceResult, type TraceRow, type TraceSpan } from "../api";
import { cellText, colorFor, formatDuration, PALETTE } from "../format";
import { linkClick, navigate } from "../router";
import { ErrorBox, Progress, useTask } from "../task";

export function traceUrl(traceId: string): string {
  return `/trace/${encodeURIComponent(traceId)}`;
}

export function TracePage({ traceId }: { traceId: string }) {
  const task = useTask<TraceResult>();
  const [input, setInput] = useState(traceId);

  useEffect(() => {
    setInput(traceId);
    if (traceId) void task.run((signal) => api.trace(traceId, signal));
    else task.reset();
  }, [traceId]);

  return (
    <main class="page trace-page">
      <form class="toolbar" onSubmit={(e) => {
        e.preventDefault();
        if (input.trim()) navigate(traceUrl(input.trim()));
      }}>
        <label>Trace id <input value={input} size={40} aria-label="Trace id"
          onInput={(e) => setInput((e.target as HTMLInputElement).value)} /></label>
        <button type="submit">Open trace</button>
        <Progress running={task.running} onCancel={task.cancel} label="Loading the trace" />
      </form>
      <ErrorBox error={task.error} />
      {!traceId && <p class="muted">Paste a trace id, or open one from an exemplar of a query result.</p>}
      {task.data && task.data.trace_id === traceId && <Trace trace={task.data} />}
    </main>
  );
}

function rowTitle(row: TraceRow): string {
  const f = row.fields;
  return cellText(f["name"] ?? f["body"] ?? f["message"] ?? f["exception.message"] ?? "");
}

function FieldsTable({ fields }: { fields: Record<string, unknown> }) {
  const keys = Object.keys(fields).sort();
  return (
    <table class="fields">
      <tbody>
        {keys.map((k) => (
          <tr key={k}><th>{k}</th><td>{cellText(fields[k])}</td></tr>
        ))}
      </tbody>
    </table>
  );
}

function RowList({ title, rows, traceStart, testId }:
  { title: string; rows: TraceRow[]; traceStart: number; testId?: string }) {
  if (!rows.length) return null;
  return (
    <section data-testid={testId}>
      <h3>{title} ({rows.length})</h3>
      {rows.map((row, i) => {
        const offset = Date.parse(row.timestamp) - traceStart;
        const linked = row.fields["trace.link.trace_id"];
        return (
          <details key={i} class="trace-row">
            <summary>
              <span class="muted">+{formatDuration(Math.max(0, offset))}</span> {rowTitle(row) || "(no name)"}
              {typeof linked === "string" && (
                <> → <a href={traceUrl(linked)} onClick={(e) => linkClick(e as MouseEvent, traceUrl(linked))}>linked trace</a></>
              )}
            </summary>
            <FieldsTable fields={row.fields} />
          </details>
        );
      })}
    </section>
  );
}

function Trace({ trace }: { trace: TraceResult }) {
  const [collapsed, setCollapsed] = useState<Set<string>>(new Set());
  const [selectedId, setSelectedId] = useState<string | null>(trace.spans[0]?.span_id ?? null);
  const traceStart = Date.parse(trace.start_time);
  const total = Math.max(trace.duration_ms, 0.001);

  const visible = useMemo(() => {
    const out: TraceSpan[] = [];
    let hideBelow = Infinity;
    for (const span of trace.spans) {
      if (span.depth <= hideBelow) hideBelow = Infinity;
      else continue;
      out.push(span);
      if (collapsed.has(span.span_id) && span.children.length) hideBelow = span.depth;
    }
    return out;
  }, [trace, collapsed]);

  const services = useMemo(() => [...new Set(trace.spans.map((s) => s.service_name ?? s.dataset))], [trace]);
  // Colours by order of appearance: distinct for the first services of any trace.
  const colorOf = (service: string) => PALETTE[services.indexOf(service) % PALETTE.length] ?? colorFor(service);
  const selected = trace.spans.find((s) => s.span_id === selectedId) ?? null;
  const errors = trace.spans.filter((s) => s.error).length;
  const allLogs = useMemo(() => {
    const rows = trace.spans.flatMap((s) => s.logs).concat(trace.unattached);
    return rows.sort((a, b) => Date.parse(a.timestamp) - Date.parse(b.timestamp));
  }, [trace]);

  const toggle = (id: string) => {
    const next = new Set(collapsed);
    if (next.has(id)) next.delete(id);
    else next.add(id);
    setCollapsed(next);
  };

  const onKey = (e: KeyboardEvent) => {
    const index = visible.findIndex((s) => s.span_id === selectedId);
    const span = visible[index];
    if (e.key === "ArrowDown" && index < visible.length - 1) setSelectedId(visible[index + 1].span_id);
    else if (e.key === "ArrowUp" && index > 0) setSelectedId(visible[index - 1].span_id);
    else if (e.key === "ArrowLeft" && span?.children.length && !collapsed.has(span.span_id)) toggle(span.span_id);
    else if (e.key === "ArrowRight" && span && collapsed.has(span.span_id)) toggle(span.span_id);
    else return;
    e.preventDefault();
  };

  return (
    <div class="trace">
      <div class="trace-summary">
        <h1>Trace <code>{trace.trace_id}</code></h1>
        <span data-testid="trace-span-count">{trace.spans.length} spans</span> ·{" "}
        {formatDuration(trace.duration_ms)} · {services.length} services
        {errors > 0 && <> · <span class="error-text">{errors} with errors</span></>}
        {trace.truncated && <> · <span class="error-text">truncated</span></>}
        <div class="legend">
          {services.map((s) => <span key={s}><i style={{ background: colorOf(s) }} />{s}</span>)}
        </div>
      </div>
      <div class="trace-body">
        <div class="waterfall" role="tree" tabIndex={0} aria-label="Spans" onKeyDown={onKey} data-testid="waterfall">
          <div class="wf-axis">
            <span class="wf-name-col">Span</span>
            <span class="wf-bars">
              {[0, 0.25, 0.5, 0.75, 1].map((f) => (
                <span key={f} class="wf-tick" style={{ left: `${f * 100}%` }}>{formatDuration(total * f)}</span>
              ))}
            </span>
          </div>
          {visible.map((span) => {
            const service = span.service_name ?? span.dataset;
            const left = (span.start_offset_ms / total) * 100;
            const width = Math.max((span.duration_ms / total) * 100, 0.3);
            const isCollapsed = collapsed.has(span.span_id);
            return (
              <div key={span.span_id} role="treeitem" aria-selected={span.span_id === selectedId}
                aria-expanded={span.children.length ? !isCollapsed : undefined}
                class={`wf-row${span.span_id === selectedId ? " selected" : ""}${span.error ? " has-error" : ""}`}
                data-testid="span-row" onClick={() => setSelectedId(span.span_id)}>
                <span class="wf-name-col" style={{ paddingLeft: `${span.depth * 14 + 4}px` }}>
                  {span.children.length > 0 ? (
                    <button type="button" class="twisty" aria-label={isCollapsed ? "Expand" : "Collapse"}
                      onClick={(e) => { e.stopPropagation(); toggle(span.span_id); }}>
                      {isCollapsed ? "▸" : "▾"}
                    </button>
                  ) : <span class="twisty" />}
                  <span class="svc" style={{ color: colorOf(service) }}>{service}</span>{" "}
                  <span title={span.name ?? ""}>{span.name ?? "(unnamed)"}</span>
                  {span.error && <span class="badge-error" title="error">!</span>}
                  {isCollapsed && <span class="muted"> +{span.children.length}</span>}
                </span>
                <span class="wf-bars">
                  <span class="wf-bar" style={{ left: `${left}%`, width: `${width}%`, background: colorOf(service) }} />
                  {[...span.events, ...span.logs].map((row, i) => (
                    <span key={i} class="wf-mark" title={rowTitle(row)}
                      style={{ left: `${((Date.parse(row.timestamp) - traceStart) / total) * 100}%` }} />
                  ))}
                  {left + width <= 80
                    ? <span class="wf-dur" style={{ left: `${left + width}%` }}>{formatDuration(span.duration_ms)}</span>
                    : width >= 12
                      ? <span class="wf-dur inside" style={{ right: `${100 - left - width}%` }}>{formatDuration(span.duration_ms)}</span>
                      : <span class="wf-dur" style={{ right: `${100 - left}%` }}>{formatDuration(span.duration_ms)}</span>}
                </span>
              </div>
            );
          })}
        </div>
        {selected && (
          <aside class="side-panel" data-testid="span-panel">
            <h2>{selected.name ?? "(unnamed)"}</h2>
            <p class="muted">
              {selected.service_name ?? selected.dataset} · {formatDuration(selected.duration_ms)} (self {formatDuration(selected.self_time_ms)})
              · starts at +{formatDuration(selected.start_offset_ms)}
              {selected.orphan && " · parent not in trace"}
            </p>
            {selected.error && <p class="error-text">This span recorded an error.</p>}
            <h3>Fields</h3>
            <FieldsTable fields={selected.fields} />
            <RowList title="Span events" rows={selected.events} traceStart={traceStart} />
            <RowList title="Links" rows={selected.links} traceStart={traceStart} />
            <RowList title="Logs of this span" rows={selected.logs} traceStart={traceStart} />
          </aside>
        )}
      </div>
      <RowList title="Logs of the trace" rows={allLogs} traceStart={traceStart} testId="trace-logs" />
    </div>
  );
}
