// The admin console with other keys and screens: a team admin key sees its own team only, the
// server refusing the rest, and is signed out once revoked; on a 360 px screen the key page fits
// and the keyboard moves through it with visible focus.
import { existsSync, mkdirSync } from "node:fs";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT_KEY, startTestService, type TestService } from "../token-service/start.js";
import { expectText, launchChromium, leakedPlaces, openPage } from "./console-browser.js";

let service: TestService;
let browser: Browser;
let consoleUrl: string;

beforeAll(async () => {
  if (!existsSync(new URL("../../packages/console/dist/index.html", import.meta.url))) {
    throw new Error("the console is not built: run `npm run build` first (npm test does)");
  }
  mkdirSync(".tmp", { recursive: true });
  [service, browser] = await Promise.all([startTestService(), launchChromium()]);
  consoleUrl = `${service.connectUrl}/console/`;
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await service?.close();
});

describe("the console with a team admin key", () => {
  it("shows its own team, is refused another's, and signs out when the key is revoked", async () => {
    const { teamId, adminKey, adminKeyId } = await service.teamWithAdmin("own-team");
    const other = await service.teamWithAdmin("other-team");
    const admin = await openPage(browser, service.connectUrl);
    try {
      const { page } = admin;
      await page.goto(consoleUrl);
      await page.getByLabel("Admin key").fill(adminKey);
      await page.getByRole("button", { name: "Sign in" }).click();
      await expectText(page.getByTestId("identity"), new RegExp(`admin of ${teamId}`));
      await expectText(page.getByRole("heading", { level: 1 }), new RegExp(teamId));
      // The console only calls the RPCs with this key: the server refuses another team.
      await page.goto(`${consoleUrl}#/teams/${other.teamId}`);
      await expectText(page.getByRole("alert"), /Not allowed with this key/);
      await page.goto(`${consoleUrl}#/audit?teamId=${other.teamId}`);
      await expectText(page.getByRole("alert"), /Not allowed with this key/);
      // Revoked while signed in: the next call signs the console out, saying why.
      await service.tokens().revoke({ keyId: adminKeyId, reason: "console test" });
      await page.goto(`${consoleUrl}#/teams/${teamId}`);
      await expectText(page.getByRole("alert"), /no longer accepts this key/);
      expect(await page.evaluate<number>("sessionStorage.length")).toBe(0);
      expect(await leakedPlaces(admin, adminKey)).toEqual([]);
      expect(admin.problems).toEqual([]);
    } finally {
      await admin.context.close();
    }
  });
});

describe("the console on a 360 px screen, by keyboard", () => {
  it("fits the width and moves focus visibly from the skip link to the screens", async () => {
    const { teamId } = await service.teamWithAdmin("small-screen");
    const keyId =
      (await service.tokens().issue({ teamId, name: "on-a-phone", scopes: ["read"] })).key?.id ?? "";
    const small = await openPage(browser, service.connectUrl, 360);
    try {
      const { page } = small;
      await page.goto(consoleUrl);
      await page.getByLabel("Admin key").fill(ROOT_KEY);
      await page.keyboard.press("Enter");
      await expectText(page.getByTestId("identity"), /root key/);
      await page.goto(`${consoleUrl}#/keys/${keyId}`);
      await expectText(page.getByTestId("usage-total"), /\d/);
      expect(await page.evaluate<number>("document.documentElement.scrollWidth")).toBeLessThanOrEqual(360);
      // From the top of the page, as after a fresh load.
      await page.evaluate("document.activeElement.blur()");
      await page.keyboard.press("Tab");
      const first = await page.evaluate<{ text: string; outline: string }>(
        "({ text: document.activeElement.textContent, outline: getComputedStyle(document.activeElement).outlineStyle })",
      );
      expect(first.text).toBe("Skip to content");
      expect(first.outline).toBe("solid");
      await page.keyboard.press("Tab");
      expect(await page.evaluate<string>("document.activeElement.textContent")).toContain("Latchkey");
      await page.screenshot({ path: ".tmp/console-key-detail-360.png", fullPage: true });
      expect(small.problems).toEqual([]);
    } finally {
      await small.context.close();
    }
  });
});
