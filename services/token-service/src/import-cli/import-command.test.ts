import { Readable, Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { IMPORT_EXIT, runImportCommand } from "./import-command.js";

/** Runs the command in this process with `argv`; it must stop before sending anything. */
async function run(argv: string[], env: NodeJS.ProcessEnv = { LATCHKEY_ADMIN_KEY: "an-admin-key" }) {
  let stderr = "";
  const stdout = new Writable({ write: (_chunk, _encoding, done) => done() });
  const errors = new Writable({
    write(chunk, _encoding, done) {
      stderr += String(chunk);
      done();
    },
  });
  const code = await runImportCommand({ argv, env, stdin: Readable.from([]), stdout, stderr: errors });
  return { code, stderr };
}

describe("latchkey-token-service import's arguments", () => {
  it.each([
    [["--concurrency", "0"], "--concurrency must be a whole number from 1 to 16"],
    [["--concurrency", "17"], "--concurrency must be a whole number from 1 to 16"],
    [["--concurrency", "2.5"], "--concurrency must be a whole number from 1 to 16"],
    [["--batch-size", "10001"], "--batch-size must be a whole number from 1 to 10000"],
    [["--input-format", "xml"], "--input-format must be jsonl or csv"],
    [["a.jsonl", "b.jsonl"], "give one file"],
    [["--url", "ftp://x"], "the token-service URL must be http:// or https://"],
  ])("%j is a usage error, before anything is sent", async (argv, message) => {
    const { code, stderr } = await run(argv);
    expect(code).toBe(IMPORT_EXIT.usage);
    expect(stderr).toContain(message);
  });
});
