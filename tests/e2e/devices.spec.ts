// The Devices page in a real browser against `kiln serve`: it shows the lavapipe adapter and the
// CPU with RAM, values update live, the details panel and benchmark work, and a screenshot is
// kept as a test artifact (test-results/e2e/devices.png).
import { expect, test } from "@playwright/test";
import { openPage } from "./pages";

const url = () => process.env.KILN_URL!;

test("devices page shows lavapipe and the CPU, live", async ({ page }) => {
  await page.goto(url());
  await expect(page.getByRole("heading", { name: "Devices" })).toBeVisible();
  // The token moved out of the address bar into the session.
  await expect.poll(() => page.url()).not.toContain("token=");

  const lavapipe = page.locator("article.device-card", { hasText: "llvmpipe" });
  await expect(lavapipe).toBeVisible();
  await expect(lavapipe).toContainText("Software GPU");
  // It computes through wgpu (Vulkan, or the same device's OpenGL where burn's SPIR-V cannot
  // run on lavapipe) and says which.
  await expect(lavapipe).toContainText(/computes on (vulkan|gl)/);

  const cpu = page.locator('article.device-card[data-device-id="cpu"]');
  await expect(cpu).toBeVisible();
  await expect(cpu.locator(".figure", { hasText: "RAM" })).toContainText(/GiB|MiB/);
  await expect(cpu.locator(".figure", { hasText: "CPU load" })).toContainText("%");

  // Live: the sample time on the card advances as telemetry events arrive.
  const sampled = async () => Number(await cpu.getAttribute("data-sampled-at"));
  const first = await sampled();
  await expect.poll(sampled, { timeout: 10_000 }).toBeGreaterThan(first);
  // History charts are drawn for the CPU.
  await expect(cpu.locator(".chart-plot canvas").first()).toBeVisible();

  // Details and a real benchmark on lavapipe.
  await lavapipe.getByRole("button", { name: /Details/ }).click();
  await expect(lavapipe.getByText("Capabilities")).toBeVisible();
  await lavapipe.getByRole("button", { name: "Run benchmark" }).click();
  await expect(lavapipe.locator(".bench-table")).toContainText("TFLOP/s", { timeout: 150_000 });
  await expect(lavapipe.locator(".bench-table")).toContainText("GB/s");

  await page.screenshot({ path: `${test.info().project.outputDir}/devices.png` });
  await lavapipe.screenshot({ path: `${test.info().project.outputDir}/devices-details.png` });
});

test("settings are saved and bad values are explained", async ({ page }) => {
  await page.goto(url());
  await openPage(page, "Control+8", "Settings");
  const interval = page.getByLabel("Sample every");
  const history = page.getByLabel("Keep history for");
  // Each value is in range, but together they would keep too many samples: the engine says so.
  await interval.fill("100");
  await history.fill("1440");
  await page.getByRole("button", { name: "Save" }).click();
  await expect(page.getByRole("alert")).toContainText("invalid_input");
  await expect(page.getByRole("alert")).toContainText("200000");
  await interval.fill("1000");
  await history.fill("15");
  await page.getByRole("button", { name: "Save" }).click();
  await expect(page.getByText("Saved.")).toBeVisible();
  await page.screenshot({ path: `${test.info().project.outputDir}/settings.png` });
});

test("without the token the page says how to get in", async ({ browser }) => {
  const context = await browser.newContext();
  const page = await context.newPage();
  const bare = url().replace(/#token=.*/, "");
  await page.goto(bare);
  await expect(page.getByRole("alert")).toContainText("kiln serve");
  await expect(page.locator(".strip")).toContainText("no token");
  await context.close();
});
