// The query page: the builder, the results (charts, heatmaps, groups) and what
// lies behind them (exemplars, raw events, BubbleUp).

import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { api, type BubbleUpResult, type Cell, type Column } from "../api";
import { formatClock, formatDateTime, formatNumber, formatSpan, PALETTE } from "../format";
import { describe, entryState, loadHistory, remember, type HistoryEntry } from "../history";
import { navigate } from "../router";
import {
  ALL_DATASETS, defaultSpec, groupId, groupLabel, pinnedSpec, stateFromSearch, stateToSearch,
  type Exemplar, type Filter, type QueryResult, type QueryState, type ResultGroup, type Scalar,
} from "../spec";
import { ErrorBox, Progress, useTask } from "../task";
import { useDatasets } from "../useDatasets";
import { BubbleUpPanel } from "./BubbleUp";
import { Builder } from "./Builder";
import { EventsView, ExemplarList, type EventsTarget } from "./Drill";
import { GroupTable } from "./GroupTable";
import { Heatmap } from "./Heatmap";
import { TimeChart, type GroupStyle } from "./TimeChart";

type Panel =
  | { kind: "exemplars"; title: string; exemplars: Exemplar[]; events: EventsTarget }
  | { kind: "events"; title: string; target: EventsTarget }
  | { kind: "bubbleup"; title: string; selection: unknown; events: EventsTarget };

function useColumns(dataset: string, datasets: string[]): Column[] {
  const [columns, setColumns] = useState<Column[]>([]);
  useEffect(() => {
    const controller = new AbortController();
    // There is no schema endpoint for __all__: it has the union of every dataset's columns.
    const load = async (): Promise<Column[]> => {
      if (dataset !== ALL_DATASETS) return api.columns(dataset, controller.signal);
      const lists = await Promise.all(datasets.map((d) => api.columns(d, controller.signal).catch(() => [])));
      const seen = new Map<string, Column>();
      for (const list of lists) for (const c of list) if (!seen.has(c.key_name)) seen.set(c.key_name, c);
      return [...seen.values()];
    };
    load()
      .then((list) => setColumns([...list].sort((a, b) => a.key_name.localeCompare(b.key_name))))
      .catch(() => setColumns([]));
    return () => controller.abort();
  }, [dataset, datasets]);
  return columns;
}

export function QueryPage({ search }: { search: string }) {
  const { datasets, error: datasetsError } = useDatasets();
  const [draft, setDraft] = useState<QueryState>(() => stateFromSearch(search, ALL_DATASETS)
    ?? { dataset: ALL_DATASETS, spec: defaultSpec() });
  const [history, setHistory] = useState<HistoryEntry[]>(loadHistory);
  const [highlighted, setHighlighted] = useState<string | null>(null);
  const [panel, setPanel] = useState<Panel | null>(null);
  const [box, setBox] = useState<Cell | null>(null);
  const query = useTask<{ state: QueryState; result: QueryResult }>();
  const bubble = useTask<BubbleUpResult>();
  const columns = useColumns(draft.dataset, datasets);
  const panelRef = useRef<HTMLElement>(null);

  // The URL is the query: loading it, or going back and forward, runs it.
  useEffect(() => {
    const state = stateFromSearch(search, ALL_DATASETS);
    if (!state) {
      navigate("/" + stateToSearch({ dataset: ALL_DATASETS, spec: defaultSpec() }), true);
      return;
    }
    void execute(state);
  }, [search]);

  useEffect(() => {
    if (panel) panelRef.current?.scrollIntoView({ behavior: "smooth", block: "nearest" });
  }, [panel]);

  async function execute(state: QueryState) {
    setDraft(state);
    setPanel(null);
    setBox(null);
    setHighlighted(null);
    bubble.reset();
    const done = await query.run(async (signal) => ({ state, result: await api.query(state.dataset, state.spec, signal) }));
    if (!done) return;
    setHistory(remember(state));
    // A URL with `bubbleup` (e.g. the SLO page's link) opens BubbleUp of that selection.
    const selection = state.bubbleup;
    if (selection !== undefined) {
      const base = pinnedSpec(state.spec, done.result);
      const group = selectionGroup(selection);
      setPanel({
        kind: "bubbleup", title: selectionTitle(selection), selection,
        events: { dataset: state.dataset, query: base, group, cell: null },
      });
      void bubble.run((signal) => api.bubbleup(state.dataset, base, selection, signal));
    }
  }

  function submit(state: QueryState) {
    // A changed query starts without the URL's BubbleUp selection.
    const url = "/" + stateToSearch({ dataset: state.dataset, spec: state.spec });
    if (url === location.pathname + location.search) void execute(state);
    else navigate(url);
  }

  // The last result and the query that produced it (kept on screen while the next one runs).
  const result = query.data?.result ?? null;
  const ran = query.data?.state ?? null;
  const styles = useMemo(() => {
    const map = new Map<string, GroupStyle>();
    result?.groups.forEach((g, index) => {
      const id = groupId(g.key, result.breakdowns);
      map.set(id, { id, index, label: groupLabel(g.key, result.breakdowns), color: PALETTE[index % PALETTE.length] });
    });
    return map;
  }, [result]);
  const groupStyles = useMemo(() => [...styles.values()], [styles]);
  const pinned = result && ran ? pinnedSpec(ran.spec, result) : null;

  const openEvents = (title: string, target: EventsTarget) => setPanel({ kind: "events", title, target });

  const onPointClick = (style: GroupStyle, time: number) => {
    if (!result || !ran || !pinned) return;
    const group = result.groups[style.index];
    const step = result.granularity;
    const inBucket = (group.exemplars ?? []).filter((e) => {
      const t = Date.parse(e.timestamp) / 1000;
      return t >= time && t < time + step;
    });
    setPanel({
      kind: "exemplars",
      title: `${style.label} at ${formatClock(time, true)}`,
      exemplars: inBucket.length ? inBucket : group.exemplars ?? [],
      events: {
        dataset: ran.dataset, query: { ...pinned, start_time: time, end_time: time + step },
        group: result.breakdowns.length ? group.key : null, cell: null,
      },
    });
  };

  const runBubbleUp = (title: string, selection: unknown, events: EventsTarget) => {
    if (!ran || !pinned) return;
    setPanel({ kind: "bubbleup", title, selection, events });
    void bubble.run((signal) => api.bubbleup(ran.dataset, pinned, selection, signal));
  };

  const changeSpec = (change: (state: QueryState) => QueryState) => {
    if (!ran) return;
    submit(change(ran));
  };
  const filterOn = (column: string, value: Scalar, exclude: boolean) => changeSpec((s) => {
    const filter: Filter = value === null
      ? { column, op: exclude ? "exists" : "does-not-exist" }
      : { column, op: exclude ? "!=" : "=", value };
    return { ...s, spec: { ...s.spec, filters: [...s.spec.filters, filter] } };
  });

  const groupTitle = (g: ResultGroup) => (result ? groupLabel(g.key, result.breakdowns) : "");

  return (
    <main class="page query-page">
      <Builder state={draft} datasets={datasets} columns={columns} onChange={setDraft}
        onRun={() => submit(draft)} running={query.running} />
      <div class="toolbar">
        <Progress running={query.running} onCancel={query.cancel} label="Running the query" />
        <details class="history">
          <summary>Recent queries ({history.length})</summary>
          <ul>
            {history.map((entry, i) => {
              const state = entryState(entry);
              return (
                <li key={i}>
                  <a href={"/" + stateToSearch(state)} onClick={(e) => {
                    e.preventDefault();
                    (e.currentTarget as HTMLElement).closest("details")?.removeAttribute("open");
                    submit(state);
                  }}>{describe(state)}</a>
                  <span class="muted small"> {formatDateTime(entry.at / 1000)}</span>
                </li>
              );
            })}
            {history.length === 0 && <li class="muted">Queries you run appear here.</li>}
          </ul>
        </details>
      </div>
      {(draft.spec.calculated_fields ?? []).length > 0 && (
        <p class="muted small" data-testid="calculated-fields">
          Calculated fields: {(draft.spec.calculated_fields ?? []).map((f) => `${f.name} = ${f.expression}`).join("; ")}
        </p>
      )}
      <ErrorBox error={datasetsError} />
      <ErrorBox error={query.error} />
      {result && ran && (
        <section class="results" aria-label="Results" data-testid="results">
          <p class="muted summary" data-testid="result-summary">
            {formatDateTime(result.start_time)} – {formatClock(result.end_time, true)} · every {formatSpan(result.granularity)} ·{" "}
            {result.groups.length} group{result.groups.length === 1 ? "" : "s"}
            {result.stats?.rows_matched !== undefined && <> · {formatNumber(result.stats.rows_matched)} events matched</>}
            {result.stats?.elapsed_ms !== undefined && <> · {formatNumber(result.stats.elapsed_ms)} ms</>}
            {result.source && result.source !== "raw" && <> · from {result.source}</>}
          </p>
          {(result.heatmaps ?? []).map((heatmap) => (
            <Heatmap key={heatmap.name} result={result} heatmap={heatmap} selection={box}
              onCellClick={(cell, bounds) => {
                if (!pinned) return;
                setPanel({
                  kind: "exemplars",
                  title: `${heatmap.column} ${formatNumber(bounds.min)}–${formatNumber(bounds.max)} at ${formatClock(bounds.start_time, true)} (${formatNumber(cell.count)} event${cell.count === 1 ? "" : "s"})`,
                  exemplars: cell.exemplars ?? [],
                  events: { dataset: ran.dataset, query: pinned, group: null, cell: bounds },
                });
              }}
              onBox={(selection) => {
                setBox(selection);
                runBubbleUp(`${selection.column} ${formatNumber(selection.min)}–${formatNumber(selection.max)}, ${formatClock(selection.start_time)}–${formatClock(selection.end_time)}`,
                  selection, { dataset: ran.dataset, query: pinned ?? ran.spec, group: null, cell: selection });
              }} />
          ))}
          {result.calculations.filter((c) => c.op !== "HEATMAP").map((calc) => (
            <TimeChart key={calc.name} result={result} name={calc.name} groups={groupStyles}
              highlighted={highlighted} onHighlight={setHighlighted} onPointClick={onPointClick} />
          ))}
          <GroupTable result={result} styles={styles} highlighted={highlighted} onHighlight={setHighlighted}
            onEvents={(g) => pinned && openEvents(`Events of ${groupTitle(g)}`, {
              dataset: ran.dataset, query: pinned, group: result.breakdowns.length ? g.key : null, cell: null,
            })}
            onExemplars={(g) => pinned && setPanel({
              kind: "exemplars", title: groupTitle(g), exemplars: g.exemplars ?? [],
              events: { dataset: ran.dataset, query: pinned, group: result.breakdowns.length ? g.key : null, cell: null },
            })}
            onBubbleUp={(g) => pinned && runBubbleUp(`group ${groupTitle(g)}`, { group: g.key },
              { dataset: ran.dataset, query: pinned, group: g.key, cell: null })} />
        </section>
      )}
      {panel && (
        <section class="panel" ref={panelRef} aria-label="Details" data-testid="panel"
          onKeyDown={(e) => { if (e.key === "Escape") setPanel(null); }}>
          <div class="panel-head">
            <h2>{panel.kind === "bubbleup" ? "BubbleUp" : panel.kind === "events" ? "Events" : "Exemplars"}: {panel.title}</h2>
            {panel.kind !== "events" && (
              <button type="button" onClick={() => setPanel({ kind: "events", title: panel.title, target: panel.events })}>Show raw events</button>
            )}
            <button type="button" class="icon" aria-label="Close" title="Close (Esc)" onClick={() => { setPanel(null); setBox(null); }}>×</button>
          </div>
          {panel.kind === "exemplars" && <ExemplarList exemplars={panel.exemplars} fallback={panel.events} />}
          {panel.kind === "events" && <EventsView target={panel.target} />}
          {panel.kind === "bubbleup" && (
            <>
              <Progress running={bubble.running} onCancel={bubble.cancel} label="Comparing every column" />
              <ErrorBox error={bubble.error} />
              {bubble.data && !bubble.running && (
                <BubbleUpPanel result={bubble.data} actions={{
                  groupBy: (column) => changeSpec((s) => ({
                    ...s, spec: { ...s.spec, breakdowns: s.spec.breakdowns.includes(column) ? s.spec.breakdowns : [...s.spec.breakdowns, column] },
                  })),
                  only: (column, value) => filterOn(column, value, false),
                  exclude: (column, value) => filterOn(column, value, true),
                }} />
              )}
            </>
          )}
        </section>
      )}
    </main>
  );
}

/** The group of a `{"group": {...}}` selection, else null. */
function selectionGroup(selection: unknown): Record<string, Scalar> | null {
  const group = (selection as { group?: unknown } | null)?.group;
  return group && typeof group === "object" ? group as Record<string, Scalar> : null;
}

/** A selection in words, for the BubbleUp panel's title. */
function selectionTitle(selection: unknown): string {
  const group = selectionGroup(selection);
  if (group) return Object.entries(group).map(([k, v]) => `${k} = ${JSON.stringify(v)}`).join(", ");
  return JSON.stringify(selection);
}
