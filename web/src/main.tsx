import { render } from "preact";
import "./styles.css";
import { linkClick, useLocation } from "./router";
import { QueryPage } from "./components/QueryPage";
import { TracePage } from "./components/TracePage";
import { SqlPage } from "./components/SqlPage";
import { SloPage } from "./components/alerts/SloPage";
import { TriggersPage } from "./components/alerts/TriggersPage";

function Nav({ path }: { path: string }) {
  const item = (href: string, label: string, active: boolean, key: string) => (
    <a href={href} class={active ? "active" : ""} aria-current={active ? "page" : undefined}
      accessKey={key} onClick={(e) => linkClick(e as MouseEvent, href)}>{label}</a>
  );
  return (
    <header class="topbar">
      <a class="brand" href="/" onClick={(e) => linkClick(e as MouseEvent, "/")}>Quarry</a>
      <nav>
        {item("/", "Query", path === "/", "q")}
        {item("/trace", "Traces", path.startsWith("/trace"), "t")}
        {item("/sql", "SQL", path === "/sql", "s")}
        {item("/slos", "SLOs", path === "/slos" || path.startsWith("/slos/"), "l")}
        {item("/triggers", "Triggers", path === "/triggers" || path.startsWith("/triggers/"), "r")}
      </nav>
    </header>
  );
}

function App() {
  const { path, search } = useLocation();
  let page;
  if (path === "/" || path === "/index.html") page = <QueryPage search={search} />;
  else if (path === "/trace" || path.startsWith("/trace/")) {
    page = <TracePage traceId={decodeURIComponent(path.slice("/trace/".length))} />;
  } else if (path === "/sql") page = <SqlPage search={search} />;
  else if (path === "/slos" || path.startsWith("/slos/")) page = <SloPage path={path} search={search} />;
  else if (path === "/triggers" || path.startsWith("/triggers/")) page = <TriggersPage path={path} search={search} />;
  else {
    page = (
      <main class="page">
        <h1>Page not found</h1>
        <p>There is nothing at <code>{path}</code>. <a href="/" onClick={(e) => linkClick(e as MouseEvent, "/")}>Go to the query builder</a>.</p>
      </main>
    );
  }
  return (
    <>
      <Nav path={path} />
      {page}
    </>
  );
}

const root = document.getElementById("app");
if (root) render(<App />, root);
