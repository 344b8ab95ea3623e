// The server's datasets, loaded once per page.

import { useEffect, useState } from "preact/hooks";
import { api } from "./api";

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
