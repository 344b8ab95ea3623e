import { useEffect, useRef, useState } from "preact/hooks";

/** The content width of an element, kept current as the window resizes. */
export function useWidth<T extends HTMLElement>(fallback = 800) {
  const ref = useRef<T>(null);
  const [width, setWidth] = useState(fallback);
  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    const update = () => setWidth(Math.max(200, Math.floor(el.clientWidth)));
    update();
    const observer = new ResizeObserver(update);
    observer.observe(el);
    return () => observer.disconnect();
  }, []);
  return [ref, width] as const;
}

/** Round-number axis ticks covering [min, max]. */
export function niceTicks(min: number, max: number, count = 4): number[] {
  if (!(max > min)) return [min];
  const raw = (max - min) / count;
  const power = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

/** Time ticks at round intervals (epoch seconds). */
export function timeTicks(start: number, end: number, count = 6): number[] {
  const span = end - start;
  const steps = [1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];
  const step = steps.find((s) => span / s <= count) ?? 86400 * Math.ceil(span / count / 86400);
  const offset = new Date().getTimezoneOffset() * 60;
  const out: number[] = [];
  // Align to local wall-clock multiples of the step.
  let t = Math.ceil((start - offset) / step) * step + offset;
  for (; t <= end; t += step) out.push(t);
  return out;
}
