// The Models and Memory pages in a real browser against `kiln serve`: the bundled model is in
// the library with its architecture and hash; loading it onto the software GPU puts it in that
// device's memory map and the ledger; its drawer hands it to the Upscale page; unloading takes
// it out again. While a job keeps the device busy, the Memory page still answers, with the pools'
// last reading said to be one. Screenshots are kept
// (test-results/e2e/models.png, memory.png, memory-busy.png).
import { expect, test } from "@playwright/test";
import { dropDrawnImage, openPage } from "./pages";

const url = () => process.env.KILN_URL!;
const MODEL = "realesr-animevideov3-x4";

test("a loaded model appears in the VRAM map and disappears after unload", async ({ page }) => {
  await page.goto(url());
  await openPage(page, "Control+3", "Models");
  const row = page.locator(`tr[data-model="${MODEL}"]`);
  await expect(row).toContainText("Compact x4 (16 convs)");
  // The kind filters keep it under Upscalers and not under LoRA.
  await page.getByRole("button", { name: /^LoRA/ }).click();
  await expect(row).toHaveCount(0);
  await page.getByRole("button", { name: /^Upscalers/ }).click();
  await expect(row).toBeVisible();
  await expect(row.locator(".model-state")).toHaveText("disk");
  // The AutoV2 hash is computed in the background.
  await expect(row.locator("td.mono")).toHaveText(/^[0-9a-f]{10}$/, { timeout: 20_000 });

  // Load onto the software GPU (the machine's only GPU without a driver).
  const select = page.getByLabel("Device to load onto");
  const lavapipe = await select.locator("option", { hasText: "llvmpipe" }).first().getAttribute("value");
  await select.selectOption(lavapipe!);
  await row.getByRole("button", { name: "Load" }).click();
  await expect(row.locator(".model-state")).toContainText("VRAM", { timeout: 60_000 });
  await row.getByRole("button", { name: MODEL }).click();
  await expect(page.getByRole("complementary", { name: `Details of ${MODEL}` })).toContainText("621,424");
  await page.screenshot({ path: `${test.info().project.outputDir}/models.png` });
  // "Use for upscaling" opens the Upscale page with this model chosen, then back.
  await page.getByRole("button", { name: "Use for upscaling" }).click();
  await expect(page.getByRole("heading", { name: "Upscale" })).toBeVisible();
  await expect(page.getByLabel("Model").locator("option:checked")).toHaveText(/realesr-animevideov3-x4/);
  await openPage(page, "Control+3", "Models");

  await openPage(page, "Control+2", "Memory");
  const card = page.locator(`article.memory-card[data-device="${lavapipe}"]`);
  const segment = card.locator(`[data-segment^="model:"][data-segment$="${MODEL}.param"]`);
  await expect(segment).toHaveCount(1);
  await expect(card.locator(".vram-legend")).toContainText(MODEL);
  await expect(card.locator(".vram-legend")).toContainText("2 MiB");
  await expect(page.locator("table.ledger")).toContainText("weights");
  await expect(page.locator('article.memory-card[data-device="ram-cache"]')).toContainText(MODEL);
  // Clicking the model's segment offers to unload or move it.
  await segment.click();
  await expect(card.getByRole("group", { name: `Actions for ${MODEL}` })).toContainText("Keep in RAM only");
  await page.screenshot({ path: `${test.info().project.outputDir}/memory.png` });

  // Unload from the Models page; the map drops it.
  await openPage(page, "Control+3", "Models");
  await row.getByRole("button", { name: "Unload" }).click();
  await expect(row.locator(".model-state")).toHaveText("RAM");
  await openPage(page, "Control+2", "Memory");
  await expect(card.locator(".vram-legend")).toBeVisible();
  await expect(segment).toHaveCount(0);
  await expect(page.locator("table.ledger")).toContainText("Kiln holds no memory");
});

test("the memory map answers while a job keeps the device busy", async ({ page }) => {
  test.setTimeout(900_000);
  await page.goto(url());
  await openPage(page, "Control+5", "Upscale");
  // A 384×384 image in 192-pixel tiles, pinned to the software GPU (jobs no one pins go to the
  // CPU backend here): seconds of work a tile.
  await page.getByLabel("Tile", { exact: true }).fill("192");
  const device = page.getByLabel("Device", { exact: true });
  const lavapipe = await device.locator("option", { hasText: "llvmpipe" }).first().getAttribute("value");
  await device.selectOption(lavapipe!);
  const zone = page.getByRole("region", { name: "Drop zone" });
  await dropDrawnImage(page, zone, "kiln-busy.png", 384, 384);
  const row = page.locator("tr.upscale-row", { hasText: "kiln-busy.png" });
  await expect(row).toHaveAttribute("data-state", "running", { timeout: 120_000 });

  // The page reads the memory on every telemetry tick; a tile holds the pools' reading back,
  // and the page shows the last one, marked, instead of waiting for the tile.
  await openPage(page, "Control+2", "Memory");
  const card = page.locator("article.memory-card", { hasText: "llvmpipe" });
  await expect(card).toContainText("the last reading: the device is busy", { timeout: 120_000 });
  await expect(card.locator(".vram-legend")).toContainText(MODEL);
  await page.screenshot({ path: `${test.info().project.outputDir}/memory-busy.png` });

  // Cancelled, so the next tests' jobs do not wait behind it.
  await openPage(page, "Control+5", "Upscale");
  await row.getByRole("button", { name: "Cancel" }).click();
  // It stops at its next tile: on a loaded 2-core machine a 192-pixel tile on lavapipe can
  // take minutes (the engine's own test checks a cancel lands mid-job).
  await expect(row).toHaveAttribute("data-state", "cancelled", { timeout: 600_000 });
});
