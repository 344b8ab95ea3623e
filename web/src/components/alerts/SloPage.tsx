// The SLO pages: `/slos?dataset=...` lists a dataset's SLOs with their compliance
// and budget; `/slos/<dataset>/<id>` shows one SLO: compliance against target,
// budget left, the burn-down over the period, burn rates over the standard
// windows, its burn alerts, and a link to BubbleUp of its bad events against
// its good ones.

import { useEffect } from "preact/hooks";
import { api, type BurnAlert, type Slo, type SloReport } from "../../api";
import { stateToSearch, defaultSpec, type QuerySpec } from "../../spec";
import { ErrorBox, Progress, useTask } from "../../task";
import { BurnDown } from "./BurnDown";
import { DatasetListPage, Link, Percent, StateBadge, Time, Value, detailOf, targetPercent } from "./common";

const LIST_PATH = "/slos";
/** The standard burn-rate windows, in the API's order (docs/alerts.md). */
const WINDOWS = ["5m", "30m", "1h", "2h", "6h", "24h", "72h"];
/** History steps offered to the API, seconds: the first giving at most MAX_POINTS. */
const HISTORY_STEPS = [60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];
const MAX_POINTS = 500;

/** A history step that draws the period in at most MAX_POINTS points. */
export function historyStep(periodDays: number): number {
  const period = periodDays * 86400;
  return HISTORY_STEPS.find((step) => period / step <= MAX_POINTS) ?? 86400;
}

export function sloPath(dataset: string, id: string): string {
  return `${LIST_PATH}/${encodeURIComponent(dataset)}/${encodeURIComponent(id)}`;
}

/**
 * The query page with the SLI as a breakdown over the SLO's window (events the
 * SLI does not count left out), and BubbleUp of the bad events (SLI false)
 * against the good ones.
 */
export function bubbleUpLink(slo: SloReport): string {
  const alias = slo.sli.alias;
  const spec: QuerySpec = {
    ...defaultSpec(),
    calculated_fields: [{ name: alias, expression: slo.sli.expression }],
    filters: [{ column: alias, op: "exists" }],
    breakdowns: [alias],
    start_time: slo.window_start,
    end_time: slo.window_end,
    time_range: undefined,
  };
  return "/" + stateToSearch({ dataset: slo.dataset, spec, bubbleup: { group: { [alias]: false } } });
}

export function SloPage({ path, search }: { path: string; search: string }) {
  const detail = detailOf(path, LIST_PATH);
  if (detail) return <SloDetail dataset={detail[0]} id={detail[1]} />;
  return (
    <DatasetListPage<Slo> path={LIST_PATH} search={search} title="SLOs" noun="SLOs" createPath="/1/slos/"
      load={(dataset, signal) => api.slos(dataset, signal)}>
      {(slos) => (
        <table class="data" data-testid="slo-list">
          <thead>
            <tr><th>SLO</th><th>SLI</th><th>target</th><th>period</th><th>compliance</th><th>budget remaining</th></tr>
          </thead>
          <tbody>
            {slos.map((slo) => <SloRow key={slo.id} slo={slo} />)}
          </tbody>
        </table>
      )}
    </DatasetListPage>
  );
}

/** One SLO of the list, with its compliance and budget (its report, one history point). */
function SloRow({ slo }: { slo: Slo }) {
  const report = useTask<SloReport>();
  useEffect(() => {
    void report.run((signal) => api.slo(slo.dataset, slo.id, slo.time_period_days * 86400, signal));
  }, [slo.id]);
  const pending = report.error ? <span class="error-text" title={report.error}>error</span> : "…";
  return (
    <tr data-testid="slo-row" data-id={slo.id}>
      <td><Link href={sloPath(slo.dataset, slo.id)} testid="slo-link">{slo.name}</Link></td>
      <td><code>{slo.sli.alias}</code></td>
      <td class="num">{targetPercent(slo.target_per_million)}</td>
      <td class="num">{slo.time_period_days} d</td>
      <td class="num">{report.data ? <Percent value={report.data.compliance} testid="compliance" /> : pending}</td>
      <td class="num">{report.data ? <Percent value={report.data.budget_remaining} testid="budget" /> : pending}</td>
    </tr>
  );
}

function SloDetail({ dataset, id }: { dataset: string; id: string }) {
  const report = useTask<{ slo: SloReport; alerts: BurnAlert[] }>();
  const load = () => report.run(async (signal) => {
    // The definition (no counting) gives the period, which sets the history step.
    const definition = (await api.slos(dataset, signal)).find((slo) => slo.id === id);
    const step = historyStep(definition?.time_period_days ?? 30);
    const [slo, alerts] = await Promise.all([
      api.slo(dataset, id, step, signal),
      api.burnAlerts(dataset, id, signal),
    ]);
    return { slo, alerts };
  });
  useEffect(() => { void load(); }, [dataset, id]);
  const data = report.data;
  const slo = data?.slo;
  return (
    <main class="page alerts-page">
      <div class="page-head">
        <Link href={`${LIST_PATH}?dataset=${encodeURIComponent(dataset)}`}>← SLOs of {dataset}</Link>
        <span class="spacer" />
        <button type="button" onClick={() => void load()} disabled={report.running}>Refresh</button>
      </div>
      <ErrorBox error={report.error} />
      <Progress running={report.running} onCancel={report.cancel} label="Computing the SLO" />
      {slo && data && (
        <>
          <h1 data-testid="slo-name">{slo.name}</h1>
          {slo.description && <p>{slo.description}</p>}
          <p class="muted">
            SLI <code>{slo.sli.alias}</code> = <code data-testid="sli">{slo.sli.expression}</code> · target{" "}
            <span data-testid="target">{targetPercent(slo.target_per_million)}</span> over {slo.time_period_days} day{slo.time_period_days === 1 ? "" : "s"} ·
            window <Time value={slo.window_start} testid="window-start" /> – <Time value={slo.window_end} testid="window-end" />
          </p>
          <div class="stats">
            <div class="stat">
              <div class="stat-label">compliance</div>
              <div class={`stat-value ${slo.compliance * 10_000 < slo.target_per_million ? "bad" : "good"}`}>
                <Percent value={slo.compliance} testid="compliance" />
              </div>
              <div class="muted small">target {targetPercent(slo.target_per_million)}</div>
            </div>
            <div class="stat">
              <div class="stat-label">budget remaining</div>
              <div class={`stat-value ${slo.budget_remaining < 0 ? "bad" : "good"}`}>
                <Percent value={slo.budget_remaining} testid="budget" />
              </div>
            </div>
            <div class="stat">
              <div class="stat-label">good events</div>
              <div class="stat-value"><Value value={slo.good} testid="good" /></div>
            </div>
            <div class="stat">
              <div class="stat-label">bad events</div>
              <div class="stat-value"><Value value={slo.bad} testid="bad" /></div>
            </div>
            <div class="stat">
              <a class="button" href={bubbleUpLink(slo)} data-testid="bubbleup-link">BubbleUp bad events against good</a>
            </div>
          </div>
          <BurnDown history={slo.history} start={slo.window_start} end={slo.window_end} />
          <h2>Burn rates</h2>
          <p class="muted small">1× spends exactly the budget over the period.</p>
          <table class="data compact" data-testid="burn-rates">
            <thead><tr>{WINDOWS.map((w) => <th key={w}>{w}</th>)}</tr></thead>
            <tbody>
              <tr>
                {WINDOWS.map((w) => (
                  <td key={w} class={`num ${(slo.burn_rates[w] ?? 0) > 1 ? "bad" : ""}`} data-window={w}>
                    <Value value={slo.burn_rates[w]} testid={`burn-${w}`} />×
                  </td>
                ))}
              </tr>
            </tbody>
          </table>
          <h2>Burn alerts</h2>
          {data.alerts.length === 0 ? (
            <p class="muted" data-testid="no-burn-alerts">None. Add one with <code>POST /1/burn_alerts/{dataset}</code>.</p>
          ) : (
            <table class="data" data-testid="burn-alerts">
              <thead><tr><th>state</th><th>type</th><th>condition</th><th>severity</th><th>last value</th><th>description</th></tr></thead>
              <tbody>
                {data.alerts.map((alert) => (
                  <tr key={alert.id} data-testid="burn-alert" data-id={alert.id}>
                    <td><StateBadge triggered={alert.triggered} /></td>
                    <td>{alert.alert_type}</td>
                    <td title={condition(alert)}>{condition(alert)}</td>
                    <td data-testid="severity">{alert.triggered ? alert.severity : ""}</td>
                    <td class="num"><Value value={alert.value} testid="burn-value" /></td>
                    <td>{alert.description}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </>
      )}
    </main>
  );
}

/** A burn alert's condition in words. */
function condition(alert: BurnAlert): string {
  switch (alert.alert_type) {
    case "exhaustion_time":
      return `budget exhausted within ${alert.exhaustion_minutes} min`;
    case "budget_rate":
      return `budget falls ${(alert.budget_rate_decrease_threshold_per_million ?? 0) / 10_000}% within ${alert.budget_rate_window_minutes} min`;
    default:
      return (alert.windows ?? [])
        .map((w) => `${w.severity} at ${w.burn_rate}× over ${w.long_minutes} and ${w.short_minutes} min`)
        .join("; ");
  }
}
