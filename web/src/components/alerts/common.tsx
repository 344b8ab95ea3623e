// Pieces shared by the SLO and trigger pages: the dataset picker, a state badge,
// numbers and times as the alerting API gives them.

import type { ComponentChildren } from "preact";
import { useEffect, useState } from "preact/hooks";
import { api } from "../../api";
import { formatDateTime } from "../../format";
import { linkClick, navigate } from "../../router";

/** Every dataset's name, sorted; an error sentence if the list failed. */
export function useDatasets(): { datasets: string[]; error: string | null } {
  const [datasets, setDatasets] = useState<string[]>([]);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    const controller = new AbortController();
    api.datasets(controller.signal)
      .then((list) => setDatasets(list.map((d) => d.name).sort()))
      .catch((caught) => setError(String(caught.message ?? caught)));
    return () => controller.abort();
  }, []);
  return { datasets, error };
}

/**
 * The dataset of a list page: the URL's `?dataset=`, else the first dataset (put
 * in the URL, so a reload shows the same page).
 */
export function usePageDataset(path: string, search: string, datasets: string[]): string | null {
  const chosen = new URLSearchParams(search).get("dataset");
  useEffect(() => {
    if (!chosen && datasets.length) navigate(`${path}?dataset=${encodeURIComponent(datasets[0])}`, true);
  }, [chosen, datasets, path]);
  return chosen;
}

export function DatasetPicker({ path, dataset, datasets }: { path: string; dataset: string | null; datasets: string[] }) {
  const names = dataset && !datasets.includes(dataset) ? [dataset, ...datasets] : datasets;
  return (
    <label class="inline">
      Dataset{" "}
      <select aria-label="Dataset" data-testid="dataset" value={dataset ?? ""}
        onChange={(e) => navigate(`${path}?dataset=${encodeURIComponent((e.target as HTMLSelectElement).value)}`)}>
        {names.map((name) => <option key={name} value={name}>{name}</option>)}
      </select>
    </label>
  );
}

/** An in-app link. */
export function Link({ href, children, testid }: { href: string; children: ComponentChildren; testid?: string }) {
  return <a href={href} data-testid={testid} onClick={(e) => linkClick(e as MouseEvent, href)}>{children}</a>;
}

/** "triggered" (red) or "ok" (green); "disabled" (grey) for a disabled trigger. */
export function StateBadge({ triggered, disabled = false }: { triggered: boolean; disabled?: boolean }) {
  const word = disabled ? "disabled" : triggered ? "triggered" : "ok";
  return <span class={`state state-${word}`} data-testid="state">{word}</span>;
}

/** A percentage with three decimals; the exact number is in `data-value`. */
export function Percent({ value, testid }: { value: number; testid?: string }) {
  return <span data-testid={testid} data-value={String(value)} title={`${value}%`}>{value.toFixed(3)}%</span>;
}

/** A number with up to three decimals; the exact number is in `data-value`. */
export function Value({ value, testid }: { value: number | null | undefined; testid?: string }) {
  if (value === null || value === undefined) return <span data-testid={testid} class="muted">–</span>;
  const text = Number.isInteger(value) ? value.toLocaleString("en-US")
    : value.toLocaleString("en-US", { maximumFractionDigits: 3 });
  return <span data-testid={testid} data-value={String(value)}>{text}</span>;
}

/** An RFC 3339 time (or epoch seconds) in local time; the given text is in `data-time`. */
export function Time({ value, testid }: { value: string | number | null | undefined; testid?: string }) {
  if (value === null || value === undefined) return <span data-testid={testid} class="muted">never</span>;
  const seconds = typeof value === "number" ? value : Date.parse(value) / 1000;
  return <time data-testid={testid} data-time={String(value)} dateTime={new Date(seconds * 1000).toISOString()}>
    {formatDateTime(seconds)}</time>;
}

/** A target per million as a percentage: 999000 -> 99.9%. */
export function targetPercent(perMillion: number): string {
  return `${Number((perMillion / 10_000).toFixed(4))}%`;
}
