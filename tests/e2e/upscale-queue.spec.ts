// The Upscale, Queue and Gallery pages in a real browser against `kiln serve`: an image dropped
// on the drop zone and one chosen with the file picker each become a row at once, run with the
// bundled model to done (on the CPU backend: with no hardware GPU, jobs no one pinned go there
// before the software rasteriser), and the result opens in the before/after
// comparison (split line dragged, zoomed, 1:1, side by side). The Queue shows the finished job
// with its log, the Gallery its thumbnail and metadata. Screenshots are kept
// (test-results/e2e/upscale-*.png, queue.png, gallery.png).
import { deflateSync } from "node:zlib";
import { expect, test } from "@playwright/test";
import { dropDrawnImage, openPage } from "./pages";

const url = () => process.env.KILN_URL!;
const MODEL = "realesr-animevideov3-x4";
/** Jobs run slowly on a 2-core machine beside the other tests. */
const JOB_TIMEOUT = 180_000;

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes: Buffer): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

/** An 8-bit RGB PNG: a gradient with a checker, so the upscale has edges to work on. */
function png(width: number, height: number): Buffer {
  const raw = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) {
    const row = y * (width * 3 + 1);
    for (let x = 0; x < width; x++) {
      const checker = ((x >> 2) + (y >> 2)) & 1;
      raw[row + 1 + x * 3] = Math.round((255 * x) / width);
      raw[row + 2 + x * 3] = Math.round((255 * y) / height);
      raw[row + 3 + x * 3] = checker ? 220 : 40;
    }
  }
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8);
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([signature, chunk("IHDR", header), chunk("IDAT", deflateSync(raw)), chunk("IEND", Buffer.alloc(0))]);
}

test("a dropped image is upscaled, compared, and shows in the queue and the gallery", async ({ page }) => {
  test.setTimeout(3 * JOB_TIMEOUT);
  const shots = test.info().project.outputDir;
  await page.goto(url());
  await openPage(page, "Control+5", "Upscale");
  const zone = page.getByRole("region", { name: "Drop zone" });
  await expect(zone).toContainText("Drop images here");
  await expect(page.getByLabel("Model", { exact: true })).toContainText(MODEL);
  // Small tiles: several tiles a job, so its progress shows.
  await page.getByLabel("Tile", { exact: true }).fill("32");
  await page.screenshot({ path: `${shots}/upscale-empty.png` });

  // 1. Drop a 64×48 PNG drawn in the page, as a file manager would.
  await dropDrawnImage(page, zone, "kiln-drop.png", 64, 48);
  const dropped = page.locator("tr.upscale-row", { hasText: "kiln-drop.png" });
  await expect(dropped).toBeVisible();

  // 2. And a 32×24 PNG through the file picker.
  await page.getByLabel("Images to upscale").setInputFiles({ name: "kiln-pick.png", mimeType: "image/png", buffer: png(32, 24) });
  const picked = page.locator("tr.upscale-row", { hasText: "kiln-pick.png" });
  await expect(picked).toBeVisible();
  await expect(page.locator("tr.upscale-row")).toHaveCount(2);

  // The dropped image runs (a live bar with tiles) and finishes.
  await expect(dropped).toHaveAttribute("data-state", /running|done/, { timeout: JOB_TIMEOUT });
  await expect(dropped).toContainText("64 × 48");
  await page.screenshot({ path: `${shots}/upscale-running.png` });
  await expect(dropped).toHaveAttribute("data-state", "done", { timeout: JOB_TIMEOUT });
  await expect(dropped.getByRole("progressbar")).toHaveAttribute("aria-valuenow", "100");
  await expect(dropped).toContainText("256 × 192");
  await expect(dropped.locator(".thumb img")).toHaveJSProperty("complete", true);
  const id = await dropped.getAttribute("data-job-id");
  expect(id).toMatch(/^\d+$/);

  // 3. The comparison: both full images, the split line dragged, zoom, 1:1 and side by side.
  await dropped.getByRole("button", { name: "Compare" }).click();
  const compare = page.getByRole("region", { name: "Comparison of kiln-drop.png" });
  await expect(compare.locator("img.compare-after")).toHaveJSProperty("naturalWidth", 256);
  await expect(compare.locator("img.compare-before")).toHaveJSProperty("naturalWidth", 64);
  const split = compare.getByRole("slider", { name: "Split between before and after" });
  await expect(split).toHaveAttribute("aria-valuenow", "50");
  const pane = compare.locator(".compare-pane");
  const paneBox = (await pane.boundingBox())!;
  const handle = (await split.boundingBox())!;
  await page.mouse.move(handle.x + handle.width / 2, handle.y + handle.height / 2);
  await page.mouse.down();
  await page.mouse.move(paneBox.x + paneBox.width * 0.25, paneBox.y + paneBox.height / 2, { steps: 10 });
  await page.mouse.up();
  await expect.poll(async () => Number(await split.getAttribute("aria-valuenow"))).toBeLessThan(35);
  await page.screenshot({ path: `${shots}/upscale-compare.png` });

  const zoom = compare.locator(".compare-zoom");
  const fitted = await zoom.textContent();
  await page.mouse.move(paneBox.x + paneBox.width * 0.6, paneBox.y + paneBox.height * 0.5);
  await page.mouse.wheel(0, -600);
  await expect(zoom).not.toHaveText(fitted!);
  await compare.getByRole("button", { name: "1:1" }).click();
  await expect(zoom).toHaveText("100%");
  await compare.getByRole("button", { name: "Fit" }).click();
  await expect(zoom).toHaveText(fitted!);
  await compare.getByRole("button", { name: "Side by side" }).click();
  await expect(compare.locator(".compare-pane")).toHaveCount(2);
  await page.screenshot({ path: `${shots}/upscale-side-by-side.png` });
  await compare.getByRole("button", { name: "Side by side" }).click();
  await expect(compare.locator(".compare-pane")).toHaveCount(1);

  // The picked image finishes too.
  await expect(picked).toHaveAttribute("data-state", "done", { timeout: JOB_TIMEOUT });
  await expect(picked).toContainText("128 × 96");

  // 4. The Queue: the job is finished, with its log.
  await openPage(page, "Control+4", "Queue");
  await expect(page.locator(".worker").first()).toBeVisible();
  // Each worker says whether it takes unpinned jobs: here the CPU backend, not the rasteriser.
  await expect(page.locator('.worker[data-device="cpu"]')).toHaveAttribute("data-takes-any", "true");
  await expect(page.locator('.worker[data-device="cpu"]')).toContainText("takes unpinned jobs");
  await expect(page.locator('.worker[data-takes-any="false"]').first()).toContainText("pinned jobs only");
  const finished = page.getByRole("group", { name: "Finished jobs", exact: true });
  const job = finished.locator(`.queue-job[data-job-id="${id}"]`);
  await expect(job).toHaveAttribute("data-state", "done");
  await job.getByRole("button", { name: "kiln-drop.png", exact: true }).click();
  const drawer = page.getByRole("complementary", { name: "Job kiln-drop.png" });
  await expect(drawer.getByRole("list", { name: "Log" })).toContainText("done in");
  await expect(drawer).toContainText("256 × 192");
  await page.screenshot({ path: `${shots}/queue.png` });
  await drawer.getByRole("button", { name: "Close the job" }).click();

  // 5. The Gallery: the result's thumbnail, and its metadata when opened.
  await openPage(page, "Control+7", "Gallery");
  const card = page.locator(`.gallery-card[data-job-id="${id}"]`);
  await expect(card.locator("img")).toHaveJSProperty("naturalWidth", 256);
  await card.click();
  const viewer = page.getByRole("dialog", { name: "Result kiln-drop.png" });
  await expect(viewer).toContainText(MODEL);
  await expect(viewer).toContainText("64 × 48");
  await expect(viewer).toContainText("256 × 192");
  await expect(viewer.locator(".viewer-image img")).toHaveJSProperty("naturalWidth", 256);
  await page.screenshot({ path: `${shots}/gallery.png` });
  await page.keyboard.press("Escape");
  await expect(viewer).toHaveCount(0);
});
