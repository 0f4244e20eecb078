// Opens a page with its keyboard shortcut, as a person would. Shortcuts work once the app has
// mounted and registered its key listener, so the key is pressed again until the page shows.
import { expect, type Locator, type Page } from "@playwright/test";

export async function openPage(page: Page, shortcut: string, heading: string): Promise<void> {
  await expect(async () => {
    await page.keyboard.press(shortcut);
    await expect(page.getByRole("heading", { name: heading, exact: true })).toBeVisible({ timeout: 1000 });
  }).toPass({ timeout: 15_000 });
}

/** Drops a PNG drawn in the page (a gradient with a "K", `width`×`height`, named `name`) on the
 *  drop zone `zone`, as a file manager would. */
export async function dropDrawnImage(page: Page, zone: Locator, name: string, width: number, height: number): Promise<void> {
  const dataTransfer = await page.evaluateHandle(
    async ([name, width, height]) => {
      const canvas = document.createElement("canvas");
      canvas.width = width;
      canvas.height = height;
      const g = canvas.getContext("2d")!;
      const gradient = g.createLinearGradient(0, 0, width, height);
      gradient.addColorStop(0, "#e8702a");
      gradient.addColorStop(1, "#2a6fe8");
      g.fillStyle = gradient;
      g.fillRect(0, 0, width, height);
      g.fillStyle = "#ffffff";
      g.font = `bold ${Math.round(height * 0.58)}px sans-serif`;
      g.fillText("K", Math.round(width * 0.34), Math.round(height * 0.75));
      const blob = await new Promise<Blob>((ok) => canvas.toBlob((b) => ok(b!), "image/png"));
      const transfer = new DataTransfer();
      transfer.items.add(new File([blob], name, { type: "image/png" }));
      return transfer;
    },
    [name, width, height] as const,
  );
  await zone.dispatchEvent("dragover", { dataTransfer });
  await zone.dispatchEvent("drop", { dataTransfer });
}
