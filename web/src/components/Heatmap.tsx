// A heatmap on canvas: time across, value buckets up, colour = event count.
// Hover shows counts; a click opens the cell's exemplars; dragging a box asks
// BubbleUp what sets the boxed events apart.

import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import type { Cell } from "../api";
import { formatClock, formatCompact, formatNumber } from "../format";
import type { HeatmapCell, HeatmapResult, QueryResult } from "../spec";
import { timeTicks, useWidth } from "./useWidth";

const HEIGHT = 260;
const PAD = { left: 56, right: 12, top: 10, bottom: 24 };
/** Pixels the mouse must move between press and release to draw a box, not click. */
const DRAG_THRESHOLD = 4;

interface Props {
  result: QueryResult;
  heatmap: HeatmapResult;
  selection: Cell | null;
  onCellClick: (cell: HeatmapCell, bounds: Cell) => void;
  onBox: (box: Cell) => void;
}

/** Blue ramp from pale to deep, for 0 < t <= 1. */
function ramp(t: number): string {
  const from = [224, 236, 255];
  const to = [23, 48, 140];
  const c = from.map((f, i) => Math.round(f + (to[i] - f) * Math.min(1, Math.max(0, t))));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

export function Heatmap({ result, heatmap, selection, onCellClick, onBox }: Props) {
  const [wrapRef, width] = useWidth<HTMLDivElement>();
  const canvas = useRef<HTMLCanvasElement>(null);
  const [logScale, setLogScale] = useState(heatmap.scale !== "linear");
  const [hover, setHover] = useState<{ x: number; y: number; time: number; bucket: number } | null>(null);
  const [drag, setDrag] = useState<{ x0: number; y0: number; x1: number; y1: number } | null>(null);

  const step = result.granularity || 60;
  // Buckets are aligned to the granularity: the first may begin before start_time.
  const start = Math.floor(result.start_time / step) * step;
  const end = Math.max(result.end_time, start + step);
  const plotW = width - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;

  const cells = useMemo(() => {
    const map = new Map<string, HeatmapCell>();
    for (const cell of heatmap.cells) map.set(`${cell.time}:${cell.bucket}`, cell);
    return map;
  }, [heatmap]);
  const maxCount = useMemo(() => heatmap.cells.reduce((m, c) => Math.max(m, c.count), 0), [heatmap]);

  // The value axis spans the buckets that hold events.
  const used = useMemo(() => {
    const indexes = new Set(heatmap.cells.filter((c) => c.count > 0).map((c) => c.bucket));
    const buckets = heatmap.buckets.filter((b) => indexes.has(b.index));
    return buckets.length ? buckets : heatmap.buckets;
  }, [heatmap]);
  const bucketByIndex = useMemo(() => new Map(heatmap.buckets.map((b) => [b.index, b])), [heatmap]);
  const positiveFloor = useMemo(() => {
    const positive = used.flatMap((b) => [b.lower, b.upper]).filter((v) => v > 0);
    return positive.length ? Math.min(...positive) : 1;
  }, [used]);
  const lo = used.length ? Math.min(...used.map((b) => b.lower)) : 0;
  const hi = used.length ? Math.max(...used.map((b) => b.upper)) : 1;
  const logLo = Math.max(lo, positiveFloor / 2);

  const scaleY = (value: number) => {
    let f: number;
    if (logScale) {
      const v = Math.max(value, logLo);
      f = (Math.log(v) - Math.log(logLo)) / (Math.log(hi) - Math.log(logLo) || 1);
    } else {
      f = (value - lo) / (hi - lo || 1);
    }
    return PAD.top + plotH - f * plotH;
  };
  const scaleX = (t: number) => PAD.left + ((t - start) / (end - start)) * plotW;

  useEffect(() => {
    const el = canvas.current;
    if (!el) return;
    const ratio = window.devicePixelRatio || 1;
    el.width = width * ratio;
    el.height = HEIGHT * ratio;
    el.style.width = `${width}px`;
    el.style.height = `${HEIGHT}px`;
    const ctx = el.getContext("2d");
    if (!ctx) return;
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, HEIGHT);
    ctx.fillStyle = "#fafbfd";
    ctx.fillRect(PAD.left, PAD.top, plotW, plotH);
    const colW = Math.max(1, (step / (end - start)) * plotW);
    ctx.save();
    ctx.beginPath();
    ctx.rect(PAD.left, PAD.top, plotW, plotH);
    ctx.clip();
    const denominator = Math.log1p(maxCount) || 1;
    for (const cell of heatmap.cells) {
      const bucket = bucketByIndex.get(cell.bucket);
      if (!bucket || cell.count <= 0) continue;
      const y0 = scaleY(bucket.upper);
      const y1 = scaleY(bucket.lower);
      ctx.fillStyle = ramp(0.15 + 0.85 * (Math.log1p(cell.count) / denominator));
      ctx.fillRect(scaleX(cell.time), y0, colW + 0.5, Math.max(1, y1 - y0));
    }
    ctx.restore();
    // Axes.
    ctx.fillStyle = "#555";
    ctx.font = "11px system-ui, sans-serif";
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    // Bucket edges as labels, at least 14 px apart.
    let lastY = Infinity;
    for (const value of [...used.map((b) => b.lower), hi]) {
      const y = Math.max(scaleY(value), PAD.top + 5);
      if (lastY - y < 14) continue;
      ctx.fillText(formatCompact(value), PAD.left - 6, y);
      lastY = y;
    }
    ctx.textAlign = "center";
    ctx.textBaseline = "alphabetic";
    for (const t of timeTicks(start, end)) ctx.fillText(formatClock(t), scaleX(t), HEIGHT - 7);
    ctx.strokeStyle = "#ccd";
    ctx.strokeRect(PAD.left + 0.5, PAD.top + 0.5, plotW, plotH);
  }, [heatmap, width, logScale, result]);

  /** The time column and bucket under a point of the canvas. */
  const hit = (px: number, py: number) => {
    if (px < PAD.left || px > PAD.left + plotW || py < PAD.top || py > PAD.top + plotH) return null;
    const t = start + ((px - PAD.left) / plotW) * (end - start);
    const time = start + Math.floor((t - start) / step) * step;
    const bucket = used.find((b) => scaleY(b.upper) <= py && py <= scaleY(b.lower))
      ?? heatmap.buckets.find((b) => scaleY(b.upper) <= py && py <= scaleY(b.lower));
    return bucket ? { time, bucket: bucket.index } : null;
  };

  const point = (e: MouseEvent) => {
    const rect = canvas.current!.getBoundingClientRect();
    return { x: e.clientX - rect.left, y: e.clientY - rect.top };
  };

  /** The box in data terms: snapped out to whole columns and bucket edges. */
  const boxToCell = (x0: number, y0: number, x1: number, y1: number): Cell => {
    const clampX = (x: number) => Math.min(PAD.left + plotW, Math.max(PAD.left, x));
    const clampY = (y: number) => Math.min(PAD.top + plotH, Math.max(PAD.top, y));
    const tA = start + ((clampX(Math.min(x0, x1)) - PAD.left) / plotW) * (end - start);
    const tB = start + ((clampX(Math.max(x0, x1)) - PAD.left) / plotW) * (end - start);
    const top = clampY(Math.min(y0, y1));
    const bottom = clampY(Math.max(y0, y1));
    // Every bucket the box overlaps.
    const inside = heatmap.buckets.filter((b) => scaleY(b.upper) <= bottom && scaleY(b.lower) >= top);
    const min = inside.length ? Math.min(...inside.map((b) => b.lower)) : lo;
    const max = inside.length ? Math.max(...inside.map((b) => b.upper)) : hi;
    return {
      column: heatmap.column,
      min, max,
      start_time: start + Math.floor((tA - start) / step) * step,
      end_time: Math.min(end, start + Math.ceil((tB - start) / step) * step),
    };
  };

  const onMouseDown = (e: MouseEvent) => {
    if (e.button !== 0) return;
    const p = point(e);
    setDrag({ x0: p.x, y0: p.y, x1: p.x, y1: p.y });
  };
  const onMouseMove = (e: MouseEvent) => {
    const p = point(e);
    if (drag) setDrag({ ...drag, x1: p.x, y1: p.y });
    const h = hit(p.x, p.y);
    setHover(h ? { ...h, x: p.x, y: p.y } : null);
  };
  const onMouseUp = (e: MouseEvent) => {
    if (!drag) return;
    const p = point(e);
    setDrag(null);
    if (Math.abs(p.x - drag.x0) < DRAG_THRESHOLD && Math.abs(p.y - drag.y0) < DRAG_THRESHOLD) {
      const h = hit(p.x, p.y);
      const bucket = h && bucketByIndex.get(h.bucket);
      const cell = h && cells.get(`${h.time}:${h.bucket}`);
      if (h && bucket && cell) {
        onCellClick(cell, { column: heatmap.column, min: bucket.lower, max: bucket.upper, start_time: h.time, end_time: h.time + step });
      }
      return;
    }
    onBox(boxToCell(drag.x0, drag.y0, p.x, p.y));
  };

  /** Keyboard: arrows move a cursor cell (shown like a hover), Enter opens it. */
  const onKeyDown = (e: KeyboardEvent) => {
    const ordered = [...used].sort((a, b) => a.lower - b.lower);
    const place = (time: number, bucket: number) => {
      const b = bucketByIndex.get(bucket);
      if (!b) return;
      setHover({ time, bucket, x: scaleX(time + step / 2), y: (scaleY(b.upper) + scaleY(b.lower)) / 2 });
    };
    if (!hover) {
      if (!["ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown", "Enter"].includes(e.key)) return;
      const busiest = heatmap.cells.reduce<HeatmapCell | null>((m, c) => (!m || c.count > m.count ? c : m), null);
      if (busiest) place(busiest.time, busiest.bucket);
      e.preventDefault();
      return;
    }
    const position = ordered.findIndex((b) => b.index === hover.bucket);
    if (e.key === "ArrowLeft" && hover.time - step >= start) place(hover.time - step, hover.bucket);
    else if (e.key === "ArrowRight" && hover.time + step < end) place(hover.time + step, hover.bucket);
    else if (e.key === "ArrowUp" && position >= 0 && position < ordered.length - 1) place(hover.time, ordered[position + 1].index);
    else if (e.key === "ArrowDown" && position > 0) place(hover.time, ordered[position - 1].index);
    else if (e.key === "Enter") {
      const bucket = bucketByIndex.get(hover.bucket);
      const cell = cells.get(`${hover.time}:${hover.bucket}`);
      if (bucket && cell) {
        onCellClick(cell, { column: heatmap.column, min: bucket.lower, max: bucket.upper, start_time: hover.time, end_time: hover.time + step });
      }
    } else if (e.key === "Escape") setHover(null);
    else return;
    e.preventDefault();
  };

  const hoverCell = hover ? cells.get(`${hover.time}:${hover.bucket}`) : undefined;
  const hoverBucket = hover ? bucketByIndex.get(hover.bucket) : undefined;
  const shownBox = drag
    ? { left: Math.min(drag.x0, drag.x1), top: Math.min(drag.y0, drag.y1), width: Math.abs(drag.x1 - drag.x0), height: Math.abs(drag.y1 - drag.y0) }
    : selection && selection.column === heatmap.column
      ? {
        left: scaleX(selection.start_time), width: scaleX(selection.end_time) - scaleX(selection.start_time),
        top: scaleY(selection.max), height: scaleY(selection.min) - scaleY(selection.max),
      }
      : null;
  const geometry = JSON.stringify({
    left: PAD.left, top: PAD.top, width: plotW, height: plotH, start, end,
    lo: logScale ? logLo : lo, hi, log: logScale,
  });

  return (
    <div class="chart heatmap" ref={wrapRef}>
      <div class="chart-title">
        {heatmap.name}
        <span class="toggle" role="group" aria-label="Value scale">
          <button type="button" class={logScale ? "" : "active"} aria-pressed={!logScale} onClick={() => setLogScale(false)}>linear</button>
          <button type="button" class={logScale ? "active" : ""} aria-pressed={logScale} onClick={() => setLogScale(true)}>log</button>
        </span>
        <span class="muted small"> click a cell for exemplars · drag a box to run BubbleUp</span>
      </div>
      <div class="heatmap-area">
        <canvas ref={canvas} data-testid="heatmap" data-geometry={geometry} role="img" tabIndex={0}
          aria-label={`Heatmap of ${heatmap.column}: arrow keys move between cells, Enter shows a cell's exemplars`}
          onKeyDown={onKeyDown} onBlur={() => setHover(null)}
          onMouseDown={onMouseDown} onMouseMove={onMouseMove} onMouseUp={onMouseUp}
          onMouseLeave={() => { setHover(null); setDrag(null); }} />
        {shownBox && <div class="selection-box" data-testid="heatmap-box" style={{
          left: `${shownBox.left}px`, top: `${shownBox.top}px`, width: `${shownBox.width}px`, height: `${shownBox.height}px`,
        }} />}
        {hover && hoverBucket && (
          <div class="cell-cursor" style={{
            left: `${scaleX(hover.time)}px`, width: `${Math.max(2, (step / (end - start)) * plotW)}px`,
            top: `${scaleY(hoverBucket.upper)}px`, height: `${Math.max(2, scaleY(hoverBucket.lower) - scaleY(hoverBucket.upper))}px`,
          }} />
        )}
        {hover && hoverBucket && !drag && (
          <div class="tooltip" role="tooltip" data-testid="heatmap-tooltip"
            style={hover.x > width * 0.65 ? { right: `${width - hover.x + 12}px`, top: `${hover.y + 12}px` } : { left: `${hover.x + 12}px`, top: `${hover.y + 12}px` }}>
            <div class="tooltip-title">{formatClock(hover.time, true)} – {formatClock(hover.time + step, true)}</div>
            <div>{heatmap.column}: {formatNumber(hoverBucket.lower)} – {formatNumber(hoverBucket.upper)}</div>
            <div>count: <b>{formatNumber(hoverCell?.count ?? 0)}</b></div>
          </div>
        )}
      </div>
    </div>
  );
}
