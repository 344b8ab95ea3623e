// One calculation over time: a line per group, hover values, legend highlight,
// click a point to see the group's exemplars around that time.

import { useMemo, useState } from "preact/hooks";
import { formatClock, formatCompact, formatNumber } from "../format";
import type { QueryResult } from "../spec";
import { groupId } from "../spec";
import { niceTicks, timeTicks, useWidth } from "./useWidth";

export interface GroupStyle { id: string; label: string; color: string; index: number }

/** A marker of the result's range (docs/alerts.md): a deploy, an incident, ... */
export interface ChartMarker {
  id: string;
  start_time: number;
  end_time?: number;
  message: string;
  type: string;
  url: string;
  color: string;
}

const HEIGHT = 170;
const PAD = { left: 56, right: 12, top: 10, bottom: 22 };

interface Props {
  result: QueryResult & { markers?: ChartMarker[] };
  name: string;
  groups: GroupStyle[];
  highlighted: string | null;
  onHighlight: (id: string | null) => void;
  onPointClick: (group: GroupStyle, time: number) => void;
}

export function TimeChart({ result, name, groups, highlighted, onHighlight, onPointClick }: Props) {
  const [ref, width] = useWidth<HTMLDivElement>();
  const [hoverTime, setHoverTime] = useState<number | null>(null);
  const step = result.granularity || 60;
  // Buckets are aligned to the granularity: the first may begin before start_time.
  const start = Math.floor(result.start_time / step) * step;
  const end = Math.max(result.end_time, start + step);

  const lines = useMemo(() => {
    const byGroup = new Map<string, Array<[number, number]>>();
    for (const point of result.series) {
      const value = point.values[name];
      if (value === null || value === undefined) continue;
      const id = groupId(point.key, result.breakdowns);
      let list = byGroup.get(id);
      if (!list) byGroup.set(id, (list = []));
      list.push([point.time, value]);
    }
    for (const list of byGroup.values()) list.sort((a, b) => a[0] - b[0]);
    return byGroup;
  }, [result, name]);

  let max = 0;
  let min = 0;
  for (const list of lines.values()) for (const [, v] of list) { max = Math.max(max, v); min = Math.min(min, v); }
  if (max === min) max = min + 1;
  const plotW = width - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const x = (t: number) => PAD.left + ((t - start) / (end - start)) * plotW;
  const y = (v: number) => PAD.top + plotH - ((v - min) / (max - min)) * plotH;
  const timeAt = (px: number) => {
    const t = start + ((px - PAD.left) / plotW) * (end - start);
    return start + Math.round((t - start) / step) * step;
  };

  const hoverRows = hoverTime === null ? [] : groups
    .map((g) => ({ g, v: lines.get(g.id)?.find(([t]) => t === hoverTime)?.[1] }))
    .filter((r) => r.v !== undefined)
    .sort((a, b) => (b.v as number) - (a.v as number));

  const onMove = (e: MouseEvent) => {
    const rect = (e.currentTarget as SVGElement).getBoundingClientRect();
    const px = e.clientX - rect.left;
    if (px < PAD.left || px > width - PAD.right) { setHoverTime(null); return; }
    setHoverTime(timeAt(px));
  };

  const onClick = (e: MouseEvent) => {
    const rect = (e.currentTarget as SVGElement).getBoundingClientRect();
    const px = e.clientX - rect.left;
    const py = e.clientY - rect.top;
    if (px < PAD.left) return;
    const t = timeAt(px);
    let best: GroupStyle | null = null;
    let bestDistance = Infinity;
    for (const g of groups) {
      const v = lines.get(g.id)?.find(([time]) => time === t)?.[1];
      if (v === undefined) continue;
      const d = Math.abs(y(v) - py);
      if (d < bestDistance) { bestDistance = d; best = g; }
    }
    if (best) onPointClick(best, t);
  };

  const tooltipLeft = hoverTime !== null && x(hoverTime) > width * 0.65;

  return (
    <div class="chart" ref={ref} data-testid="time-chart">
      <div class="chart-title">{name}</div>
      <svg width={width} height={HEIGHT} onMouseMove={onMove} onMouseLeave={() => setHoverTime(null)}
        onClick={onClick} role="img" aria-label={`${name} over time`}>
        {niceTicks(min, max).map((v) => (
          <g key={v}>
            <line x1={PAD.left} x2={width - PAD.right} y1={y(v)} y2={y(v)} class="grid" />
            <text x={PAD.left - 6} y={y(v) + 4} class="axis" text-anchor="end">{formatCompact(v)}</text>
          </g>
        ))}
        {timeTicks(start, end).map((t) => (
          <text key={t} x={x(t)} y={HEIGHT - 6} class="axis" text-anchor="middle">{formatClock(t)}</text>
        ))}
        {groups.map((g) => {
          const points = lines.get(g.id);
          if (!points?.length) return null;
          const dim = highlighted !== null && highlighted !== g.id;
          // A gap in the buckets breaks the line: missing buckets mean no events.
          let d = "";
          let previous = -Infinity;
          for (const [t, v] of points) {
            d += `${t - previous > step * 1.5 ? "M" : "L"}${x(t).toFixed(1)},${y(v).toFixed(1)}`;
            previous = t;
          }
          return (
            <g key={g.id} opacity={dim ? 0.15 : 1}>
              <path d={d} fill="none" stroke={g.color} stroke-width={highlighted === g.id ? 2.5 : 1.5} />
              {points.length < 3 && points.map(([t, v]) => <circle key={t} cx={x(t)} cy={y(v)} r={2.5} fill={g.color} />)}
            </g>
          );
        })}
        {(result.markers ?? []).map((m) => {
          // A marker's span, clipped to the chart; a point marker is a line.
          const from = Math.max(m.start_time, start);
          const to = Math.min(m.end_time ?? m.start_time, end);
          if (to < from) return null;
          const label = [m.type, m.message].filter(Boolean).join(": ");
          return (
            <g key={m.id} class="marker" data-testid="chart-marker">
              <title>{label}</title>
              {to > from && (
                <rect x={x(from)} y={PAD.top} width={Math.max(1, x(to) - x(from))} height={plotH}
                  fill={m.color} opacity={0.12} />
              )}
              <line x1={x(from)} x2={x(from)} y1={PAD.top} y2={PAD.top + plotH}
                stroke={m.color} stroke-width={1.5} stroke-dasharray="4 3" />
            </g>
          );
        })}
        {hoverTime !== null && (
          <>
            <line x1={x(hoverTime)} x2={x(hoverTime)} y1={PAD.top} y2={PAD.top + plotH} class="cursor" />
            {hoverRows.map(({ g, v }) => <circle key={g.id} cx={x(hoverTime)} cy={y(v as number)} r={3} fill={g.color} />)}
          </>
        )}
      </svg>
      {hoverTime !== null && (
        <div class="tooltip" role="tooltip" data-testid="chart-tooltip"
          style={tooltipLeft ? { right: `${width - x(hoverTime) + 10}px` } : { left: `${x(hoverTime) + 10}px` }}>
          <div class="tooltip-title">{formatClock(hoverTime, true)}</div>
          {hoverRows.length === 0 && <div class="muted">no events</div>}
          {hoverRows.slice(0, 8).map(({ g, v }) => (
            <div key={g.id} class={highlighted === g.id ? "strong" : ""}>
              <i class="swatch" style={{ background: g.color }} /> {g.label}: <b>{formatNumber(v)}</b>
            </div>
          ))}
          {hoverRows.length > 8 && <div class="muted">and {hoverRows.length - 8} more</div>}
          <div class="muted small">click for exemplars</div>
        </div>
      )}
      {groups.length > 1 && (
        <div class="legend" onMouseLeave={() => onHighlight(null)}>
          {groups.slice(0, 20).map((g) => (
            <button type="button" key={g.id} class={`legend-item${highlighted === g.id ? " active" : ""}`}
              onMouseEnter={() => onHighlight(g.id)} onFocus={() => onHighlight(g.id)}
              onClick={() => onHighlight(highlighted === g.id ? null : g.id)}>
              <i class="swatch" style={{ background: g.color }} />{g.label}
            </button>
          ))}
          {groups.length > 20 && <span class="muted">+{groups.length - 20} more groups in the table</span>}
        </div>
      )}
    </div>
  );
}
