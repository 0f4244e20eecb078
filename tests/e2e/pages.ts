// Opens a page with its keyboard shortcut, as a person would. Shortcuts work once the app has
// mounted and registered its key listener, so the key is pressed again until the page shows.
import { expect, type Page } from "@playwright/test";

export async function openPage(page: Page, shortcut: string, heading: string): Promise<void> {
  await expect(async () => {
    await page.keyboard.press(shortcut);
    await expect(page.getByRole("heading", { name: heading, exact: true })).toBeVisible({ timeout: 1000 });
  }).toPass({ timeout: 15_000 });
}
