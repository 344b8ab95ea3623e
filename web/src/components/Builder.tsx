// The query builder: one box per clause, Honeycomb's way.

import type { JSX } from "preact";
import type { Column } from "../api";
import { formatDateTime, fromLocalInput, toLocalInput } from "../format";
import {
  ALL_DATASETS, CALCULATION_OPS, COLUMNLESS_OPS, FILTER_OPS, GRANULARITIES, HAVING_OPS,
  LIST_FILTER_OPS, TIME_PRESETS, VALUELESS_FILTER_OPS, calculationName,
  type Filter, type QuerySpec, type QueryState, type Scalar,
} from "../spec";

const COLUMN_LIST = "quarry-columns";

interface Props {
  state: QueryState;
  datasets: string[];
  columns: Column[];
  onChange: (state: QueryState) => void;
  onRun: () => void;
  running: boolean;
}

/** The text a user typed, as the value the column's type calls for. */
export function typedValue(text: string, type: string | undefined): Scalar {
  const trimmed = text.trim();
  if ((type === "integer" || type === "float") && trimmed !== "" && Number.isFinite(Number(trimmed))) {
    return Number(trimmed);
  }
  if (type === "boolean" && (trimmed === "true" || trimmed === "false")) return trimmed === "true";
  return text;
}

function valueText(value: Filter["value"]): string {
  if (value === undefined || value === null) return "";
  if (Array.isArray(value)) return value.map((v) => String(v)).join(", ");
  return String(value);
}

function Clause({ title, children, hint, wide }:
  { title: string; children: JSX.Element | JSX.Element[]; hint?: string; wide?: boolean }) {
  return (
    <fieldset class={wide ? "clause wide" : "clause"}>
      <legend>{title}</legend>
      {hint && <p class="hint">{hint}</p>}
      {children}
    </fieldset>
  );
}

function RemoveButton({ label, onClick }: { label: string; onClick: () => void }) {
  return <button type="button" class="icon" aria-label={label} title={label} onClick={onClick}>×</button>;
}

function ColumnInput({ value, onChange, label, testId }:
  { value: string; onChange: (v: string) => void; label: string; testId?: string }) {
  return (
    <input class="column-input" list={COLUMN_LIST} value={value} aria-label={label} placeholder="column"
      data-testid={testId} autoComplete="off" spellcheck={false}
      onInput={(e) => onChange((e.target as HTMLInputElement).value)} />
  );
}

export function Builder({ state, datasets, columns, onChange, onRun, running }: Props) {
  const spec = state.spec;
  const set = (patch: Partial<QuerySpec>) => onChange({ ...state, spec: { ...spec, ...patch } });
  const typeOf = (name: string) => columns.find((c) => c.key_name === name)?.type;
  const replace = <T,>(list: T[], index: number, item: T) => list.map((x, i) => (i === index ? item : x));
  const without = <T,>(list: T[], index: number) => list.filter((_, i) => i !== index);
  const calcNames = spec.calculations.filter((c) => c.op !== "HEATMAP").map(calculationName);
  const custom = spec.start_time !== undefined && spec.end_time !== undefined;

  const setFilterValue = (index: number, filter: Filter, text: string) => {
    const type = typeOf(filter.column);
    const value = LIST_FILTER_OPS.has(filter.op)
      ? text.split(",").map((part) => typedValue(part.trim(), type)).filter((v) => v !== "")
      : typedValue(text, type);
    set({ filters: replace(spec.filters, index, { ...filter, value }) });
  };

  return (
    <form class="builder" aria-label="Query builder" data-testid="builder"
      onSubmit={(e) => { e.preventDefault(); onRun(); }}
      onKeyDown={(e) => {
        if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); onRun(); }
      }}>
      <datalist id={COLUMN_LIST}>
        {columns.map((c) => <option key={c.key_name} value={c.key_name}>{c.type}</option>)}
      </datalist>
      <div class="builder-row">
        <label class="inline">Dataset{" "}
          <select value={state.dataset} data-testid="dataset"
            onChange={(e) => onChange({ ...state, dataset: (e.target as HTMLSelectElement).value })}>
            <option value={ALL_DATASETS}>All datasets (__all__)</option>
            {datasets.map((d) => <option key={d} value={d}>{d}</option>)}
            {state.dataset !== ALL_DATASETS && !datasets.includes(state.dataset) &&
              <option value={state.dataset}>{state.dataset}</option>}
          </select>
        </label>
        <label class="inline">Time{" "}
          <select data-testid="time-range" value={custom ? "custom" : String(spec.time_range ?? 7200)}
            onChange={(e) => {
              const v = (e.target as HTMLSelectElement).value;
              if (v === "custom") {
                const end = Math.floor(Date.now() / 1000);
                set({ start_time: end - (spec.time_range ?? 7200), end_time: end, time_range: undefined });
              } else {
                set({ time_range: Number(v), start_time: undefined, end_time: undefined });
              }
            }}>
            {TIME_PRESETS.map(([s, label]) => <option key={s} value={String(s)}>{label}</option>)}
            {!custom && !TIME_PRESETS.some(([s]) => s === spec.time_range) &&
              <option value={String(spec.time_range)}>Last {spec.time_range} s</option>}
            <option value="custom">Custom range…</option>
          </select>
        </label>
        {custom && (
          <>
            <label class="inline">From{" "}
              <input type="datetime-local" value={toLocalInput(spec.start_time!)} aria-label="Start time"
                title={formatDateTime(spec.start_time!)}
                onChange={(e) => { const t = fromLocalInput((e.target as HTMLInputElement).value); if (t !== undefined) set({ start_time: t }); }} />
            </label>
            <label class="inline">to{" "}
              <input type="datetime-local" value={toLocalInput(spec.end_time!)} aria-label="End time"
                title={formatDateTime(spec.end_time!)}
                onChange={(e) => { const t = fromLocalInput((e.target as HTMLInputElement).value); if (t !== undefined) set({ end_time: t }); }} />
            </label>
          </>
        )}
        <label class="inline">Granularity{" "}
          <select value={String(spec.granularity ?? 0)} data-testid="granularity"
            onChange={(e) => { const g = Number((e.target as HTMLSelectElement).value); set({ granularity: g || undefined }); }}>
            {GRANULARITIES.map(([s, label]) => <option key={s} value={String(s)}>{label}</option>)}
          </select>
        </label>
        <span class="spacer" />
        <button type="submit" class="primary" disabled={running} data-testid="run-query" title="Run (Ctrl+Enter)">Run query</button>
      </div>

      <div class="clauses">
        <Clause title="Visualize" wide>
          <>
            {spec.calculations.map((calc, i) => (
              <div class="clause-row" key={i} data-testid="calculation">
                <select value={calc.op} aria-label={`Calculation ${i + 1}`}
                  onChange={(e) => set({ calculations: replace(spec.calculations, i, { ...calc, op: (e.target as HTMLSelectElement).value }) })}>
                  {CALCULATION_OPS.map((op) => <option key={op} value={op}>{op}</option>)}
                </select>
                {!COLUMNLESS_OPS.has(calc.op) && (
                  <ColumnInput value={calc.column ?? ""} label={`Column of calculation ${i + 1}`}
                    onChange={(column) => set({ calculations: replace(spec.calculations, i, { ...calc, column }) })} />
                )}
                {spec.calculations.length > 1 &&
                  <RemoveButton label="Remove calculation" onClick={() => set({ calculations: without(spec.calculations, i) })} />}
              </div>
            ))}
            <button type="button" class="add" onClick={() => set({ calculations: [...spec.calculations, { op: "HEATMAP", column: "duration_ms" }] })}>+ calculation</button>
          </>
        </Clause>

        <Clause title="Where" wide>
          <>
            {spec.filters.map((filter, i) => (
              <div class="clause-row" key={i} data-testid="filter">
                <ColumnInput value={filter.column} label={`Filter ${i + 1} column`}
                  onChange={(column) => set({ filters: replace(spec.filters, i, { ...filter, column }) })} />
                <select value={filter.op} aria-label={`Filter ${i + 1} operator`}
                  onChange={(e) => {
                    const op = (e.target as HTMLSelectElement).value;
                    let value = filter.value;
                    if (VALUELESS_FILTER_OPS.has(op)) value = undefined;
                    else if (LIST_FILTER_OPS.has(op) && !Array.isArray(value)) value = value === undefined || value === "" ? [] : [value as Scalar];
                    else if (!LIST_FILTER_OPS.has(op) && Array.isArray(value)) value = value[0] ?? "";
                    set({ filters: replace(spec.filters, i, { ...filter, op, value }) });
                  }}>
                  {FILTER_OPS.map(([op, label]) => <option key={op} value={op}>{label}</option>)}
                </select>
                {!VALUELESS_FILTER_OPS.has(filter.op) && (
                  <input class="value-input" value={valueText(filter.value)} aria-label={`Filter ${i + 1} value`}
                    placeholder={LIST_FILTER_OPS.has(filter.op) ? "a, b, c" : "value"}
                    onChange={(e) => setFilterValue(i, filter, (e.target as HTMLInputElement).value)} />
                )}
                <RemoveButton label="Remove filter" onClick={() => set({ filters: without(spec.filters, i) })} />
              </div>
            ))}
            <div class="clause-row">
              <button type="button" class="add" onClick={() => set({ filters: [...spec.filters, { column: "", op: "=", value: "" }] })}>+ filter</button>
              {spec.filters.length > 1 && (
                <label class="inline">match{" "}
                  <select value={spec.filter_combination} aria-label="Filter combination"
                    onChange={(e) => set({ filter_combination: (e.target as HTMLSelectElement).value === "OR" ? "OR" : "AND" })}>
                    <option value="AND">all (AND)</option>
                    <option value="OR">any (OR)</option>
                  </select>
                </label>
              )}
            </div>
          </>
        </Clause>

        <Clause title="Group by">
          <>
            {spec.breakdowns.map((b, i) => (
              <div class="clause-row" key={i} data-testid="breakdown">
                <ColumnInput value={b} label={`Group by column ${i + 1}`}
                  onChange={(column) => set({ breakdowns: replace(spec.breakdowns, i, column) })} />
                <RemoveButton label="Remove group by" onClick={() => set({ breakdowns: without(spec.breakdowns, i) })} />
              </div>
            ))}
            <button type="button" class="add" onClick={() => set({ breakdowns: [...spec.breakdowns, ""] })}>+ group by</button>
          </>
        </Clause>

        <Clause title="Order by">
          <>
            {spec.orders.map((order, i) => {
              const current = order.op ? calculationName({ op: order.op, column: order.column }) : `col:${order.column ?? ""}`;
              return (
                <div class="clause-row" key={i}>
                  <select value={current} aria-label={`Order ${i + 1} by`}
                    onChange={(e) => {
                      const v = (e.target as HTMLSelectElement).value;
                      if (v.startsWith("col:")) set({ orders: replace(spec.orders, i, { column: v.slice(4), order: order.order }) });
                      else {
                        const calc = spec.calculations.find((c) => calculationName(c) === v);
                        set({ orders: replace(spec.orders, i, { op: calc?.op, column: COLUMNLESS_OPS.has(calc?.op ?? "") ? undefined : calc?.column, order: order.order }) });
                      }
                    }}>
                    {calcNames.map((n) => <option key={n} value={n}>{n}</option>)}
                    {spec.breakdowns.filter(Boolean).map((b) => <option key={b} value={`col:${b}`}>{b}</option>)}
                    {!calcNames.includes(current) && !spec.breakdowns.includes(current.slice(4)) &&
                      <option value={current}>{current.replace(/^col:/, "")}</option>}
                  </select>
                  <select value={order.order ?? "descending"} aria-label={`Order ${i + 1} direction`}
                    onChange={(e) => set({ orders: replace(spec.orders, i, { ...order, order: (e.target as HTMLSelectElement).value as "ascending" | "descending" }) })}>
                    <option value="descending">descending</option>
                    <option value="ascending">ascending</option>
                  </select>
                  <RemoveButton label="Remove order" onClick={() => set({ orders: without(spec.orders, i) })} />
                </div>
              );
            })}
            <button type="button" class="add" onClick={() => {
              const first = spec.calculations.find((c) => c.op !== "HEATMAP") ?? { op: "COUNT" };
              set({ orders: [...spec.orders, { op: first.op, column: COLUMNLESS_OPS.has(first.op) ? undefined : first.column, order: "descending" }] });
            }}>+ order</button>
          </>
        </Clause>

        <Clause title="Having">
          <>
            {spec.havings.map((having, i) => {
              const current = calculationName({ op: having.calculate_op, column: having.column });
              return (
                <div class="clause-row" key={i}>
                  <select value={current} aria-label={`Having ${i + 1} calculation`}
                    onChange={(e) => {
                      const calc = spec.calculations.find((c) => calculationName(c) === (e.target as HTMLSelectElement).value);
                      if (calc) set({ havings: replace(spec.havings, i, { ...having, calculate_op: calc.op, column: COLUMNLESS_OPS.has(calc.op) ? undefined : calc.column }) });
                    }}>
                    {calcNames.map((n) => <option key={n} value={n}>{n}</option>)}
                    {!calcNames.includes(current) && <option value={current}>{current}</option>}
                  </select>
                  <select value={having.op} aria-label={`Having ${i + 1} operator`}
                    onChange={(e) => set({ havings: replace(spec.havings, i, { ...having, op: (e.target as HTMLSelectElement).value }) })}>
                    {HAVING_OPS.map((op) => <option key={op} value={op}>{op}</option>)}
                  </select>
                  <input type="number" class="num-input" value={having.value} aria-label={`Having ${i + 1} value`}
                    onChange={(e) => set({ havings: replace(spec.havings, i, { ...having, value: Number((e.target as HTMLInputElement).value) || 0 }) })} />
                  <RemoveButton label="Remove having" onClick={() => set({ havings: without(spec.havings, i) })} />
                </div>
              );
            })}
            <button type="button" class="add" onClick={() => {
              const first = spec.calculations.find((c) => c.op !== "HEATMAP") ?? { op: "COUNT" };
              set({ havings: [...spec.havings, { calculate_op: first.op, column: COLUMNLESS_OPS.has(first.op) ? undefined : first.column, op: ">", value: 0 }] });
            }}>+ having</button>
          </>
        </Clause>

        <Clause title="Limit">
          <input type="number" min={1} class="num-input" value={spec.limit ?? ""} placeholder="100" aria-label="Limit"
            onChange={(e) => { const n = Math.floor(Number((e.target as HTMLInputElement).value)); set({ limit: n > 0 ? n : undefined }); }} />
        </Clause>
      </div>
    </form>
  );
}
