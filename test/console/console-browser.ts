// Test support for the console's browser tests: Debian's Chromium through playwright-core, a page per
// test context, and a watch on everything that could leak the admin key or break the CSP.
import { existsSync } from "node:fs";
import { type Browser, type BrowserContext, chromium, type Locator, type Page } from "playwright-core";
import { expect } from "vitest";

/** `.ci/run` installs Debian's chromium when it is missing; the launcher script sets Debian's flags. */
export const CHROMIUM = "/usr/bin/chromium";

/** Launches headless Chromium, or fails saying how to install it. */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`no ${CHROMIUM}: apt-get install -y chromium`);
  return chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
}

/** A page and what it did: every request URL, CSP violations and script errors. */
export interface WatchedPage {
  readonly context: BrowserContext;
  readonly page: Page;
  readonly requestUrls: string[];
  readonly problems: string[];
}

/** A fresh context (its own storage) and page at `width`, with clipboard access for the copy button. */
export async function openPage(browser: Browser, origin: string, width = 1280): Promise<WatchedPage> {
  const context = await browser.newContext({
    viewport: { width, height: 900 },
    permissions: ["clipboard-read", "clipboard-write"],
    // The clipboard permission is granted per origin.
    baseURL: origin,
  });
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin });
  const page = await context.newPage();
  const requestUrls: string[] = [];
  const problems: string[] = [];
  page.on("request", (request) => requestUrls.push(request.url()));
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("console", (message) => {
    const text = message.text();
    if (message.type() === "error" && /Content Security Policy|Trusted Type|Refused to/i.test(text)) {
      problems.push(`console: ${text}`);
    }
  });
  return { context, page, requestUrls, problems };
}

/** Where the key could have landed that scripts, URLs or other sites can read. */
export async function leakedPlaces(watched: WatchedPage, key: string): Promise<string[]> {
  const { page, context, requestUrls } = watched;
  const places: string[] = [];
  // Evaluated in the page (these tests are typed without the DOM library).
  const inPage = await page.evaluate<{ cookie: string; local: string; url: string }>(
    "({ cookie: document.cookie, local: JSON.stringify({ ...localStorage }), url: location.href })",
  );
  if (inPage.cookie.includes(key)) places.push("document.cookie");
  if (inPage.local.includes(key)) places.push("localStorage");
  if (inPage.url.includes(key)) places.push("location");
  for (const cookie of await context.cookies())
    if (cookie.value.includes(key)) places.push(`cookie ${cookie.name}`);
  for (const url of requestUrls)
    if (url.includes(key) || url.includes(encodeURIComponent(key))) places.push(url);
  return places;
}

/** Waits (Playwright's auto-wait) until the locator's text matches. */
export async function expectText(locator: Locator, pattern: RegExp, timeoutMs = 10_000): Promise<void> {
  await locator.first().waitFor({ state: "visible", timeout: timeoutMs });
  await expect
    .poll(async () => (await locator.allTextContents()).join(" | "), { timeout: timeoutMs })
    .toMatch(pattern);
}
