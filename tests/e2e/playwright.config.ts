// Browser tests against `kiln serve`, in Debian's Chromium (no browser download: set
// KILN_CHROMIUM to another Chromium to use it instead).
import { defineConfig } from "@playwright/test";

export default defineConfig({
  testDir: ".",
  testMatch: "*.spec.ts",
  timeout: 180_000,
  workers: 1,
  reporter: [["list"]],
  outputDir: "../../test-results/e2e",
  globalSetup: "./serve.ts",
  use: {
    viewport: { width: 1440, height: 1000 },
    launchOptions: {
      executablePath: process.env.KILN_CHROMIUM ?? "/usr/bin/chromium",
      args: [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    },
  },
});
