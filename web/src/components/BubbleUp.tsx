// BubbleUp's ranked columns: how the selection differs from everything else,
// each chart offering to group by the column or filter on one of its values.

import { useState } from "preact/hooks";
import type { BubbleUpResult, ColumnComparison } from "../api";
import { cellText, formatCompact, formatNumber } from "../format";
import type { Scalar } from "../spec";

const SELECTION_COLOR = "#e07b00";
const BASELINE_COLOR = "#3366cc";
const SHOWN_COLUMNS = 12;
const SHOWN_VALUES = 6;

export interface BubbleUpActions {
  groupBy: (column: string) => void;
  only: (column: string, value: Scalar) => void;
  exclude: (column: string, value: Scalar) => void;
}

const percent = (share: number) => `${(share * 100).toFixed(share < 0.1 ? 1 : 0)}%`;

function Categorical({ column, actions }: { column: ColumnComparison; actions: BubbleUpActions }) {
  const values = (column.values ?? []).slice(0, SHOWN_VALUES);
  return (
    <table class="bu-values">
      <tbody>
        {values.map((v) => (
          <tr key={String(v.value)}>
            <td class="bu-label" title={cellText(v.value)}>{cellText(v.value)}</td>
            <td class="bu-bars">
              <span class="bu-bar" style={{ width: `${v.selection * 100}%`, background: SELECTION_COLOR }} title={`selection ${percent(v.selection)}`} />
              <span class="bu-bar" style={{ width: `${v.baseline * 100}%`, background: BASELINE_COLOR }} title={`baseline ${percent(v.baseline)}`} />
            </td>
            <td class="num small">{percent(v.selection)} / {percent(v.baseline)}</td>
            <td class="actions">
              <button type="button" class="link-button" title={`only ${column.column} = ${cellText(v.value)}`}
                onClick={() => actions.only(column.column, v.value)}>only</button>
              <button type="button" class="link-button" title={`exclude ${column.column} = ${cellText(v.value)}`}
                onClick={() => actions.exclude(column.column, v.value)}>exclude</button>
            </td>
          </tr>
        ))}
        {column.missing.selection + column.missing.baseline > 0 && (
          <tr class="muted small">
            <td class="bu-label">(missing)</td>
            <td class="bu-bars">
              <span class="bu-bar" style={{ width: `${column.missing.selection * 100}%`, background: SELECTION_COLOR }} />
              <span class="bu-bar" style={{ width: `${column.missing.baseline * 100}%`, background: BASELINE_COLOR }} />
            </td>
            <td class="num">{percent(column.missing.selection)} / {percent(column.missing.baseline)}</td>
            <td />
          </tr>
        )}
      </tbody>
    </table>
  );
}

function Histogram({ column }: { column: ColumnComparison }) {
  const h = column.histogram;
  if (!h) return null;
  const n = h.selection.length;
  const max = Math.max(...h.selection, ...h.baseline, 1e-9);
  const W = 260;
  const H = 70;
  const bw = W / n;
  return (
    <svg width={W} height={H + 14} class="bu-hist" role="img" aria-label={`Distribution of ${column.column}`}>
      {h.baseline.map((share, i) => (
        <rect key={`b${i}`} x={i * bw + 1} width={bw / 2 - 1} y={H - (share / max) * H} height={(share / max) * H} fill={BASELINE_COLOR}>
          <title>{`${formatNumber(h.edges[i])}–${formatNumber(h.edges[i + 1])}: baseline ${percent(share)}`}</title>
        </rect>
      ))}
      {h.selection.map((share, i) => (
        <rect key={`s${i}`} x={i * bw + bw / 2} width={bw / 2 - 1} y={H - (share / max) * H} height={(share / max) * H} fill={SELECTION_COLOR}>
          <title>{`${formatNumber(h.edges[i])}–${formatNumber(h.edges[i + 1])}: selection ${percent(share)}`}</title>
        </rect>
      ))}
      <text x={0} y={H + 12} class="axis">{formatCompact(h.edges[0])}</text>
      <text x={W} y={H + 12} class="axis" text-anchor="end">{formatCompact(h.edges[h.edges.length - 1])}</text>
    </svg>
  );
}

export function BubbleUpPanel({ result, actions }: { result: BubbleUpResult; actions: BubbleUpActions }) {
  const [showAll, setShowAll] = useState(false);
  const columns = showAll ? result.columns : result.columns.slice(0, SHOWN_COLUMNS);
  return (
    <div class="bubbleup" data-testid="bubbleup">
      <p>
        <span class="key-swatch" style={{ background: SELECTION_COLOR }} /> selection: {formatNumber(result.selection.weight)} events ·{" "}
        <span class="key-swatch" style={{ background: BASELINE_COLOR }} /> baseline: {formatNumber(result.baseline.weight)} events
        {result.sampled && " · sampled"} · columns ranked by how differently their values are spread
      </p>
      {result.columns.length === 0 && <p class="muted">No column could be compared.</p>}
      <div class="bu-grid">
        {columns.map((column, rank) => (
          <div class="bu-card" key={column.column} data-testid="bubbleup-column" data-column={column.column}>
            <div class="bu-head">
              <span class="bu-rank">{rank + 1}</span>
              <b title={column.column}>{column.column}</b>
              <span class="muted small" title="total variation distance: 0 = same spread, 1 = no overlap">
                {column.selection_column ? "selected on" : `difference ${column.score.toFixed(2)}`}
              </span>
              <button type="button" class="link-button" onClick={() => actions.groupBy(column.column)}>group by this</button>
            </div>
            {column.kind === "categorical" ? <Categorical column={column} actions={actions} /> : <Histogram column={column} />}
          </div>
        ))}
      </div>
      {result.columns.length > SHOWN_COLUMNS && (
        <button type="button" class="link-button" onClick={() => setShowAll(!showAll)}>
          {showAll ? "Show fewer columns" : `Show all ${result.columns.length} columns`}
        </button>
      )}
    </div>
  );
}
