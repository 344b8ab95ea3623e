// The trigger pages: `/triggers?dataset=...` lists a dataset's triggers with
// their state, threshold, frequency and last evaluation; `/triggers/<dataset>/<id>`
// shows one trigger: each group's state, its alert transitions and its recent
// evaluations (docs/alerts.md, Triggers).

import { useEffect } from "preact/hooks";
import { api, type Trigger } from "../../api";
import { formatSpan } from "../../format";
import { calculationName, parseSpec, stateToSearch, type Scalar } from "../../spec";
import { ErrorBox, Progress, useTask } from "../../task";
import { DatasetListPage, Link, StateBadge, Time, Value, detailOf } from "./common";

const LIST_PATH = "/triggers";

export function triggerPath(dataset: string, id: string): string {
  return `${LIST_PATH}/${encodeURIComponent(dataset)}/${encodeURIComponent(id)}`;
}

/** `COUNT > 50`, with the calculation's result name. */
function thresholdText(trigger: Trigger): string {
  const calc = trigger.query.calculations?.[0];
  const name = calc ? calculationName(calc) : "value";
  return `${name} ${trigger.threshold.op} ${trigger.threshold.value}`;
}

/** A group's breakdown values in words (`all events` without breakdowns). */
function groupText(group: Record<string, Scalar> | null): string {
  const entries = Object.entries(group ?? {});
  return entries.length ? entries.map(([k, v]) => `${k} = ${v === null ? "(none)" : String(v)}`).join(", ") : "all events";
}

export function TriggersPage({ path, search }: { path: string; search: string }) {
  const detail = detailOf(path, LIST_PATH);
  if (detail) return <TriggerDetail dataset={detail[0]} id={detail[1]} />;
  return (
    <DatasetListPage<Trigger> path={LIST_PATH} search={search} title="Triggers" noun="triggers" createPath="/1/triggers/"
      load={(dataset, signal) => api.triggers(dataset, signal)}>
      {(triggers) => (
        <table class="data" data-testid="trigger-list">
          <thead>
            <tr><th>trigger</th><th>state</th><th>threshold</th><th>every</th><th>last evaluated</th><th>last value</th><th>alert type</th></tr>
          </thead>
          <tbody>
            {triggers.map((trigger) => (
              <tr key={trigger.id} data-testid="trigger-row" data-id={trigger.id}>
                <td><Link href={triggerPath(trigger.dataset, trigger.id)} testid="trigger-link">{trigger.name}</Link></td>
                <td><StateBadge triggered={trigger.triggered} disabled={trigger.disabled} /></td>
                <td data-testid="threshold">{thresholdText(trigger)}</td>
                <td data-testid="frequency">{formatSpan(trigger.frequency)}</td>
                <td><Time value={trigger.state.last_evaluated} testid="last-evaluated" /></td>
                <td class="num"><Value value={trigger.state.last_value} testid="last-value" /></td>
                <td>{trigger.alert_type}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </DatasetListPage>
  );
}

function TriggerDetail({ dataset, id }: { dataset: string; id: string }) {
  const task = useTask<Trigger>();
  const load = () => task.run((signal) => api.trigger(dataset, id, signal));
  useEffect(() => { void load(); }, [dataset, id]);
  const trigger = task.data;
  return (
    <main class="page alerts-page">
      <div class="page-head">
        <Link href={`${LIST_PATH}?dataset=${encodeURIComponent(dataset)}`}>← Triggers of {dataset}</Link>
        <span class="spacer" />
        <button type="button" onClick={() => void load()} disabled={task.running}>Refresh</button>
      </div>
      <ErrorBox error={task.error} />
      <Progress running={task.running} onCancel={task.cancel} label="Loading the trigger" />
      {trigger && (
        <>
          <h1><span data-testid="trigger-name">{trigger.name}</span> <StateBadge triggered={trigger.triggered} disabled={trigger.disabled} /></h1>
          {trigger.description && <p>{trigger.description}</p>}
          <p class="muted">
            <span data-testid="threshold">{thresholdText(trigger)}</span>
            {trigger.threshold.exceeded_limit > 1 && <> for {trigger.threshold.exceeded_limit} evaluations in a row</>}
            {" "}· every <span data-testid="frequency">{formatSpan(trigger.frequency)}</span> · {trigger.alert_type} ·
            last evaluated <Time value={trigger.state.last_evaluated} testid="last-evaluated" />, value{" "}
            <Value value={trigger.state.last_value} testid="last-value" /> ·{" "}
            <a href={"/" + stateToSearch({ dataset: trigger.dataset, spec: parseSpec(trigger.query) })} data-testid="query-link">open the query</a>
          </p>
          <h2>Groups</h2>
          {trigger.state.groups.length === 0 ? <p class="muted">No group is over the threshold or alerting.</p> : (
            <table class="data" data-testid="groups">
              <thead><tr><th>group</th><th>state</th><th>value</th><th>evaluations over</th></tr></thead>
              <tbody>
                {trigger.state.groups.map((g) => (
                  <tr key={JSON.stringify(g.group)} data-testid="group-row">
                    <td>{groupText(g.group)}</td>
                    <td><StateBadge triggered={g.triggered} /></td>
                    <td class="num"><Value value={g.value} /></td>
                    <td class="num">{g.exceeded}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          <h2>Alert history</h2>
          {trigger.state.transitions.length === 0 ? <p class="muted" data-testid="no-transitions">It has not triggered yet.</p> : (
            <table class="data" data-testid="transitions">
              <thead><tr><th>time</th><th>became</th><th>group</th><th>value</th></tr></thead>
              <tbody>
                {[...trigger.state.transitions].reverse().map((t, i) => (
                  <tr key={i} data-testid="transition">
                    <td><Time value={t.time} testid="time" /></td>
                    <td><StateBadge triggered={t.status === "triggered"} /></td>
                    <td data-testid="group">{groupText(t.group)}</td>
                    <td class="num"><Value value={t.value} testid="value" /></td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          <h2>Recent evaluations</h2>
          {trigger.state.history.length === 0 ? <p class="muted">Not evaluated yet.</p> : (
            <table class="data" data-testid="evaluations">
              <thead><tr><th>time</th><th>value</th><th>groups triggered</th><th>notifications</th></tr></thead>
              <tbody>
                {[...trigger.state.history].reverse().map((h, i) => (
                  <tr key={i} data-testid="evaluation">
                    <td><Time value={h.time} testid="time" /></td>
                    <td class="num"><Value value={h.value} testid="value" /></td>
                    <td class="num" data-testid="triggered-groups">{h.triggered_groups}</td>
                    <td>{h.error ? <span class="error-text">{h.error}</span> : h.events.join("; ")}</td>
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
