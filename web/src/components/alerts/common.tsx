// Pieces shared by the SLO and trigger pages: the list page of a dataset, the
// dataset picker, a state badge, numbers and times as the alerting API gives them.

import type { ComponentChildren } from "preact";
import { useEffect } from "preact/hooks";
import { formatDateTime } from "../../format";
import { linkClick, navigate } from "../../router";
import { ErrorBox, Progress, useTask } from "../../task";
import { useDatasets } from "../../useDatasets";

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

/** `[dataset, id]` of a detail page's path (`<list path>/<dataset>/<id>`), else null. */
export function detailOf(path: string, listPath: string): [string, string] | null {
  const rest = path.slice(listPath.length + 1).split("/").map(decodeURIComponent);
  return rest.length === 2 && rest[0] && rest[1] ? [rest[0], rest[1]] : null;
}

interface ListProps<T> {
  /** The page's path, `/slos` or `/triggers`. */
  path: string;
  search: string;
  title: string;
  /** What is listed, plural, for sentences ("SLOs"). */
  noun: string;
  /** The API path that creates one, without the dataset ("/1/slos/"). */
  createPath: string;
  load: (dataset: string, signal: AbortSignal) => Promise<T[]>;
  /** The table of a non-empty list. */
  children: (items: T[]) => ComponentChildren;
}

/** A list page of one dataset's SLOs or triggers, the dataset chosen in the URL. */
export function DatasetListPage<T>({ path, search, title, noun, createPath, load, children }: ListProps<T>) {
  const { datasets, error } = useDatasets();
  const dataset = usePageDataset(path, search, datasets);
  const list = useTask<T[]>();
  useEffect(() => {
    if (dataset) void list.run((signal) => load(dataset, signal));
  }, [dataset]);
  return (
    <main class="page alerts-page">
      <div class="page-head">
        <h1>{title}</h1>
        <DatasetPicker path={path} dataset={dataset} datasets={datasets} />
      </div>
      <ErrorBox error={error} />
      <ErrorBox error={list.error} />
      <Progress running={list.running} onCancel={list.cancel} label={`Loading ${noun}`} />
      {list.data && dataset && (list.data.length === 0 ? (
        <p class="muted" data-testid="empty">No {noun} in {dataset}. Create one with <code>POST {createPath}{dataset}</code> (docs/alerts.md).</p>
      ) : (
        <div class="table-wrap">{children(list.data)}</div>
      ))}
    </main>
  );
}
