// A table of JSON rows: columns in first-seen order, click a header to sort.

import { useMemo, useState } from "preact/hooks";
import { cellText } from "../format";

export function columnsOf(rows: Array<Record<string, unknown>>): string[] {
  const seen = new Set<string>();
  for (const row of rows) for (const key of Object.keys(row)) seen.add(key);
  return [...seen];
}

export function compareValues(a: unknown, b: unknown): number {
  if (a === b) return 0;
  if (a === null || a === undefined) return 1;
  if (b === null || b === undefined) return -1;
  if (typeof a === "number" && typeof b === "number") return a - b;
  return String(a).localeCompare(String(b), undefined, { numeric: true });
}

export function SortHeader({ label, active, descending, onClick, numeric }:
  { label: string; active: boolean; descending: boolean; onClick: () => void; numeric?: boolean }) {
  return (
    <th class={numeric ? "num" : ""} aria-sort={active ? (descending ? "descending" : "ascending") : "none"}>
      <button type="button" class="sort" onClick={onClick}>
        {label}{active ? (descending ? " ▼" : " ▲") : ""}
      </button>
    </th>
  );
}

export function DataTable({ rows, columns, testId, maxRows = 1000 }:
  { rows: Array<Record<string, unknown>>; columns?: string[]; testId?: string; maxRows?: number }) {
  const cols = useMemo(() => columns ?? columnsOf(rows), [rows, columns]);
  const [sort, setSort] = useState<{ column: string; descending: boolean } | null>(null);
  const sorted = useMemo(() => {
    if (!sort) return rows;
    const out = [...rows].sort((x, y) => compareValues(x[sort.column], y[sort.column]));
    return sort.descending ? out.reverse() : out;
  }, [rows, sort]);
  if (!rows.length) return <p class="muted">No rows.</p>;
  return (
    <div class="table-wrap">
      <table class="data" data-testid={testId}>
        <thead>
          <tr>
            {cols.map((c) => (
              <SortHeader key={c} label={c} active={sort?.column === c} descending={!!sort?.descending}
                numeric={typeof rows.find((r) => r[c] !== null && r[c] !== undefined)?.[c] === "number"}
                onClick={() => setSort(sort?.column === c ? { column: c, descending: !sort.descending } : { column: c, descending: false })} />
            ))}
          </tr>
        </thead>
        <tbody>
          {sorted.slice(0, maxRows).map((row, i) => (
            <tr key={i}>
              {cols.map((c) => (
                <td key={c} class={typeof row[c] === "number" ? "num" : ""}>{cellText(row[c])}</td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
      {rows.length > maxRows && <p class="muted">Showing {maxRows} of {rows.length} rows.</p>}
    </div>
  );
}
