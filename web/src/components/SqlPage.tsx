// The SQL console: an editor, the result table, CSV download.

import { useEffect, useRef, useState } from "preact/hooks";
import { api } from "../api";
import { navigate } from "../router";
import { ErrorBox, Progress, useTask } from "../task";
import { DataTable } from "./DataTable";

const EXAMPLE = `SELECT "service.name", count(*) AS spans, avg(duration_ms) AS avg_ms
FROM "__all__"
GROUP BY 1
ORDER BY spans DESC
LIMIT 20`;

export function SqlPage({ search }: { search: string }) {
  const fromUrl = new URLSearchParams(search).get("sql");
  const [text, setText] = useState(fromUrl ?? EXAMPLE);
  const [datasets, setDatasets] = useState<string[]>([]);
  const task = useTask<Array<Record<string, unknown>>>();
  const download = useTask<Blob>();
  const editor = useRef<HTMLTextAreaElement>(null);

  useEffect(() => {
    const controller = new AbortController();
    api.datasets(controller.signal)
      .then((list) => setDatasets(list.map((d) => d.name).sort()))
      .catch(() => setDatasets([]));
    editor.current?.focus();
    return () => controller.abort();
  }, []);

  // The URL holds the SQL of the last run: loading it (or going back/forward) runs it.
  useEffect(() => {
    if (fromUrl === null) return;
    setText(fromUrl);
    void task.run((signal) => api.sql(fromUrl, signal));
  }, [fromUrl]);

  const run = () => {
    const sql = text.trim();
    if (!sql) return;
    if (sql === fromUrl) void task.run((signal) => api.sql(sql, signal));
    else navigate("/sql?" + new URLSearchParams({ sql }).toString());
  };

  const downloadCsv = async () => {
    const blob = await download.run((signal) => api.sqlCsv(text, signal));
    if (!blob) return;
    const url = URL.createObjectURL(blob);
    const a = document.createElement("a");
    a.href = url;
    a.download = "quarry-result.csv";
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  };

  return (
    <main class="page sql-page">
      <h1>SQL console</h1>
      <p class="muted">
        DataFusion SQL over every dataset; <code>"__all__"</code> is all of them at once. Quote names
        with dots: <code>"service.name"</code>. Run with <kbd>Ctrl</kbd>+<kbd>Enter</kbd>.
      </p>
      {datasets.length > 0 && (
        <p class="chips" aria-label="Datasets">
          Datasets:{" "}
          {datasets.map((d) => (
            <button type="button" class="chip" key={d}
              onClick={() => setText(`SELECT *\nFROM "${d}"\nORDER BY "timestamp" DESC\nLIMIT 100`)}>{d}</button>
          ))}
        </p>
      )}
      <textarea ref={editor} class="sql-editor" aria-label="SQL query" spellcheck={false} value={text}
        data-testid="sql-editor"
        onInput={(e) => setText((e.target as HTMLTextAreaElement).value)}
        onKeyDown={(e) => {
          if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
            e.preventDefault();
            run();
          }
        }} />
      <div class="toolbar">
        <button type="button" class="primary" onClick={run} disabled={task.running} data-testid="sql-run">Run</button>
        <button type="button" onClick={downloadCsv} disabled={download.running}>Download CSV</button>
        <Progress running={task.running} onCancel={task.cancel} />
        {task.data && !task.running && <span class="muted">{task.data.length} rows</span>}
      </div>
      <ErrorBox error={task.error ?? download.error} />
      {task.data && <DataTable rows={task.data} testId="sql-result" />}
    </main>
  );
}
