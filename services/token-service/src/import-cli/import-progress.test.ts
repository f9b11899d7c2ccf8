import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { createImportProgress } from "./import-progress.js";

function sink(isTTY: boolean) {
  const chunks: string[] = [];
  const out = Object.assign(
    new Writable({
      write(chunk, _encoding, callback) {
        chunks.push(String(chunk));
        callback();
      },
    }),
    { isTTY, columns: 200 },
  );
  return { out, text: () => chunks.join("") };
}

const totals = { rows: 500, imported: 400, alreadyImported: 90, bad: 10 };

describe("import progress", () => {
  it("redraws one bar in place on a terminal and clears it", () => {
    const { out, text } = sink(true);
    const progress = createImportProgress({ out, totalBytes: 1_000 });
    progress.update(totals, 250);
    progress.update(totals, 1_000);
    progress.clear();
    const frames = text()
      .split("\r")
      .filter((frame) => frame !== "");
    expect(frames[0]).toMatch(/^\[#{6}-{18}\] 25% 500 rows: 400 imported, 90 already there, 10 bad/);
    expect(frames[1]).toMatch(/^\[#{24}\] 100% /);
    expect(text()).not.toContain("\n");
    expect(text().endsWith("\r\x1b[K")).toBe(true);
  });

  it("writes plain lines, at most one per interval, when not on a terminal", () => {
    const { out, text } = sink(false);
    const progress = createImportProgress({ out, plainEveryMs: 60_000 });
    progress.update(totals, 10);
    progress.update(totals, 20);
    progress.clear();
    expect(text()).toMatch(/^progress: 500 rows: 400 imported, 90 already there, 10 bad \(\d+ keys\/s\)\n$/);
  });
});
