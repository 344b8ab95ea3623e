// The SLO's budget burn-down: the error budget left from the period's start to
// each history bucket's end, over the whole period (docs/alerts.md, SLOs).

import { useState } from "preact/hooks";
import type { SloHistoryPoint } from "../../api";
import { formatClock, formatCompact, formatDateTime, formatNumber } from "../../format";
import { niceTicks, timeTicks, useWidth } from "../useWidth";

const HEIGHT = 200;
const PAD = { left: 56, right: 12, top: 10, bottom: 22 };

interface Props {
  history: SloHistoryPoint[];
  start: number;
  end: number;
}

/** Clock times over up to two days, dates over longer periods. */
function tickLabel(t: number, span: number): string {
  return span <= 2 * 86400
    ? formatClock(t)
    : new Date(t * 1000).toLocaleDateString("en-CA", { month: "2-digit", day: "2-digit" });
}

/** Each point at its bucket's end: the budget is counted up to there. */
function bucketEnds(history: SloHistoryPoint[], end: number): Array<[number, SloHistoryPoint]> {
  return history.map((point, i) => [i + 1 < history.length ? history[i + 1].time : end, point]);
}

export function BurnDown({ history, start, end }: Props) {
  const [ref, width] = useWidth<HTMLDivElement>();
  const [hover, setHover] = useState<number | null>(null);
  const points = bucketEnds(history, end);
  const values = points.map(([, p]) => p.budget_remaining);
  const min = Math.min(0, ...values);
  const max = Math.max(100, ...values);
  const plotW = width - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const x = (t: number) => PAD.left + ((t - start) / Math.max(1, end - start)) * plotW;
  const y = (v: number) => PAD.top + plotH - ((v - min) / (max - min)) * plotH;
  const d = [`M${x(start).toFixed(1)},${y(100).toFixed(1)}`]
    .concat(points.map(([t, p]) => `L${x(t).toFixed(1)},${y(p.budget_remaining).toFixed(1)}`))
    .join("");

  const onMove = (e: MouseEvent) => {
    const rect = (e.currentTarget as SVGElement).getBoundingClientRect();
    const t = start + ((e.clientX - rect.left - PAD.left) / plotW) * (end - start);
    let best: number | null = null;
    points.forEach(([time], i) => {
      if (best === null || Math.abs(time - t) < Math.abs(points[best][0] - t)) best = i;
    });
    setHover(best);
  };
  const hovered = hover === null ? null : points[hover];

  return (
    <div class="chart" ref={ref} data-testid="burn-down">
      <div class="chart-title">Error budget remaining (burn-down)</div>
      <svg width={width} height={HEIGHT} role="img" aria-label="Error budget remaining over the SLO period"
        onMouseMove={onMove} onMouseLeave={() => setHover(null)}>
        {niceTicks(min, max).map((v) => (
          <g key={v}>
            <line x1={PAD.left} x2={width - PAD.right} y1={y(v)} y2={y(v)} class="grid" />
            <text x={PAD.left - 6} y={y(v) + 4} class="axis" text-anchor="end">{formatCompact(v)}%</text>
          </g>
        ))}
        {timeTicks(start, end).map((t) => (
          <text key={t} x={x(t)} y={HEIGHT - 6} class="axis" text-anchor="middle">{tickLabel(t, end - start)}</text>
        ))}
        <line x1={PAD.left} x2={width - PAD.right} y1={y(0)} y2={y(0)} class="budget-zero" />
        <path d={d} fill="none" stroke="#3366cc" stroke-width={1.8} data-testid="burn-down-line"
          data-points={String(points.length)} />
        {hovered && <circle cx={x(hovered[0])} cy={y(hovered[1].budget_remaining)} r={3.5} fill="#3366cc" />}
      </svg>
      {hovered && (
        <div class="tooltip" style={{ left: `${Math.min(x(hovered[0]) + 12, width - 260)}px` }}>
          <div class="tooltip-title">up to {formatDateTime(hovered[0])}</div>
          <div>budget left {hovered[1].budget_remaining.toFixed(3)}%</div>
          <div>compliance {hovered[1].compliance.toFixed(3)}%</div>
          <div class="muted">this bucket: {formatNumber(hovered[1].good)} good, {formatNumber(hovered[1].bad)} bad</div>
        </div>
      )}
    </div>
  );
}
