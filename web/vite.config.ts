import { defineConfig } from "vite";

// Preact through esbuild's automatic JSX runtime: no framework plugin needed.
export default defineConfig({
  esbuild: { jsx: "automatic", jsxImportSource: "preact" },
  build: { outDir: "dist", emptyOutDir: true, target: "es2020", sourcemap: false },
  server: {
    // `npm run dev` proxies the API to a running `quarry serve` (default port).
    proxy: {
      "/api": "http://127.0.0.1:8080",
      "/1": "http://127.0.0.1:8080",
    },
  },
});
