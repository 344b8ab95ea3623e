// Recent queries, kept in the browser (localStorage).

import { cleanSpec, parseSpec, type QueryState } from "./spec";

const KEY = "quarry.history.v1";
const MAX_ENTRIES = 25;

export interface HistoryEntry { dataset: string; query: Record<string, unknown>; at: number }

export function loadHistory(): HistoryEntry[] {
  try {
    const raw = JSON.parse(localStorage.getItem(KEY) ?? "[]");
    return Array.isArray(raw) ? raw.filter((e) => e && typeof e.dataset === "string") : [];
  } catch {
    return [];
  }
}

export function remember(state: QueryState): HistoryEntry[] {
  const query = cleanSpec(state.spec);
  const text = JSON.stringify([state.dataset, query]);
  const entries = [{ dataset: state.dataset, query, at: Date.now() }]
    .concat(loadHistory().filter((e) => JSON.stringify([e.dataset, e.query]) !== text))
    .slice(0, MAX_ENTRIES);
  try {
    localStorage.setItem(KEY, JSON.stringify(entries));
  } catch {
    // Storage full or disabled: history is a convenience, the query still ran.
  }
  return entries;
}

export function entryState(entry: HistoryEntry): QueryState {
  return { dataset: entry.dataset, spec: parseSpec(entry.query) };
}

/** One line for people: what the query computes, where, by what. */
export function describe(state: QueryState): string {
  const spec = state.spec;
  const parts = [spec.calculations.map((c) => (c.column ? `${c.op}(${c.column})` : c.op)).join(", ")];
  if (spec.filters.length) {
    parts.push("where " + spec.filters.map((f) =>
      `${f.column} ${f.op}${f.value === undefined ? "" : " " + JSON.stringify(f.value)}`).join(` ${spec.filter_combination} `));
  }
  if (spec.breakdowns.length) parts.push("by " + spec.breakdowns.join(", "));
  return `${parts.join(" ")} · ${state.dataset}`;
}
