// One cancellable request at a time, with progress for people who wait.

import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { ApiError } from "./api";

export interface Task<T> {
  data: T | null;
  error: string | null;
  running: boolean;
  run: (work: (signal: AbortSignal) => Promise<T>) => Promise<T | null>;
  cancel: () => void;
  reset: () => void;
}

export function useTask<T>(): Task<T> {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [running, setRunning] = useState(false);
  const controller = useRef<AbortController | null>(null);

  const cancel = useCallback(() => controller.current?.abort(), []);
  useEffect(() => () => controller.current?.abort(), []);

  const run = useCallback(async (work: (signal: AbortSignal) => Promise<T>) => {
    controller.current?.abort();
    const mine = new AbortController();
    controller.current = mine;
    setRunning(true);
    setError(null);
    try {
      const result = await work(mine.signal);
      if (controller.current === mine) {
        setData(result);
        return result;
      }
    } catch (caught) {
      if (controller.current === mine) {
        if (caught instanceof ApiError) setError(caught.message);
        else if (caught instanceof DOMException && caught.name === "AbortError") setError("Cancelled.");
        else setError(`Something went wrong in the page: ${String(caught)}`);
      }
    } finally {
      if (controller.current === mine) {
        setRunning(false);
        controller.current = null;
      }
    }
    return null;
  }, []);

  const reset = useCallback(() => {
    controller.current?.abort();
    setData(null);
    setError(null);
  }, []);

  return { data, error, running, run, cancel, reset };
}

/** "Running… 3.2 s" with a cancel button, while `running`. */
export function Progress({ running, onCancel, label = "Running" }:
  { running: boolean; onCancel: () => void; label?: string }) {
  const [started, setStarted] = useState(0);
  const [, setNow] = useState(0);
  useEffect(() => {
    if (!running) return;
    setStarted(performance.now());
    const timer = setInterval(() => setNow(performance.now()), 100);
    return () => clearInterval(timer);
  }, [running]);
  if (!running) return null;
  const seconds = started ? (performance.now() - started) / 1000 : 0;
  return (
    <div class="progress" role="status" aria-live="polite">
      <span class="spinner" aria-hidden="true" />
      {label}… {seconds.toFixed(1)} s
      <button type="button" class="link-button" onClick={onCancel}>Cancel</button>
    </div>
  );
}

export function ErrorBox({ error }: { error: string | null }) {
  if (!error) return null;
  return <div class="error" role="alert">{error}</div>;
}
