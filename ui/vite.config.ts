// Vite builds the UI into ui/dist, which the desktop shell and `kiln serve` both embed.
import { defineConfig } from "vite";

export default defineConfig({
  root: import.meta.dirname,
  base: "./",
  build: { outDir: "dist", emptyOutDir: true, target: "es2022", chunkSizeWarningLimit: 800 },
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  server: { port: 5173, strictPort: true },
});
