// The groups of a result, sortable, each with its raw events and exemplars.

import { useMemo, useState } from "preact/hooks";
import { cellText, formatNumber } from "../format";
import type { QueryResult, ResultGroup } from "../spec";
import { groupId } from "../spec";
import { compareValues, SortHeader } from "./DataTable";
import type { GroupStyle } from "./TimeChart";

interface Props {
  result: QueryResult;
  styles: Map<string, GroupStyle>;
  highlighted: string | null;
  onHighlight: (id: string | null) => void;
  onEvents: (group: ResultGroup) => void;
  onExemplars: (group: ResultGroup) => void;
  onBubbleUp: (group: ResultGroup) => void;
}

export function GroupTable({ result, styles, highlighted, onHighlight, onEvents, onExemplars, onBubbleUp }: Props) {
  const names = result.calculations.filter((c) => c.op !== "HEATMAP").map((c) => c.name);
  const [sort, setSort] = useState<{ column: string; kind: "key" | "value"; descending: boolean } | null>(null);
  const rows = useMemo(() => {
    if (!sort) return result.groups;
    const get = (g: ResultGroup) => (sort.kind === "key" ? g.key[sort.column] : g.values[sort.column]);
    const out = [...result.groups].sort((a, b) => compareValues(get(a), get(b)));
    return sort.descending ? out.reverse() : out;
  }, [result, sort]);
  const header = (column: string, kind: "key" | "value") => (
    <SortHeader key={`${kind}:${column}`} label={column} numeric={kind === "value"}
      active={sort?.column === column && sort.kind === kind} descending={!!sort?.descending}
      onClick={() => setSort(sort?.column === column && sort.kind === kind
        ? { ...sort, descending: !sort.descending }
        : { column, kind, descending: kind === "value" })} />
  );
  return (
    <div class="table-wrap">
      <table class="data groups" data-testid="group-table">
        <thead>
          <tr>
            <th aria-label="colour" />
            {result.breakdowns.map((b) => header(b, "key"))}
            {names.map((n) => header(n, "value"))}
            <th>Drill down</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((group) => {
            const id = groupId(group.key, result.breakdowns);
            const style = styles.get(id);
            return (
              <tr key={id} class={highlighted === id ? "highlighted" : ""}
                onMouseEnter={() => onHighlight(id)} onMouseLeave={() => onHighlight(null)}>
                <td><i class="swatch" style={{ background: style?.color ?? "#999" }} /></td>
                {result.breakdowns.map((b) => (
                  <td key={b}>{group.key[b] === null || group.key[b] === undefined ? <span class="muted">(none)</span> : cellText(group.key[b])}</td>
                ))}
                {names.map((n) => <td key={n} class="num">{formatNumber(group.values[n])}</td>)}
                <td class="actions">
                  <button type="button" class="link-button" onClick={() => onEvents(group)}>events</button>
                  {(group.exemplars?.length ?? 0) > 0 &&
                    <button type="button" class="link-button" onClick={() => onExemplars(group)}>exemplars</button>}
                  {result.breakdowns.length > 0 &&
                    <button type="button" class="link-button" title="What sets this group apart?" onClick={() => onBubbleUp(group)}>BubbleUp</button>}
                </td>
              </tr>
            );
          })}
        </tbody>
        {result.totals && names.length > 0 && result.groups.length > 1 && (
          <tfoot>
            <tr>
              <td />
              {result.breakdowns.map((b, i) => <td key={b}>{i === 0 ? "all groups" : ""}</td>)}
              {names.map((n) => <td key={n} class="num">{formatNumber(result.totals?.[n])}</td>)}
              <td />
            </tr>
          </tfoot>
        )}
      </table>
      {result.groups.length === 0 && <p class="muted">No events match this query in this time range.</p>}
    </div>
  );
}
