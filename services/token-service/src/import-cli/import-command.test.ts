import { Readable, Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { IMPORT_EXIT, runImportCommand } from "./import-command.js";

// Nothing listens there: a command that got as far as sending would be stopped by UNAVAILABLE instead.
const NOWHERE = { LATCHKEY_ADMIN_KEY: "an-admin-key", LATCHKEY_TOKEN_SERVICE_URL: "http://127.0.0.1:9" };

/** Runs the command in this process with `argv`; it must stop before sending anything. */
async function run(argv: string[], env: NodeJS.ProcessEnv = NOWHERE, input = "") {
  let stderr = "";
  const stdout = new Writable({ write: (_chunk, _encoding, done) => done() });
  const errors = new Writable({
    write(chunk, _encoding, done) {
      stderr += String(chunk);
      done();
    },
  });
  const stdin = Readable.from(input === "" ? [] : [input]);
  const code = await runImportCommand({ argv, env, stdin, stdout, stderr: errors });
  return { code, stderr };
}

describe("latchkey-token-service import's arguments", () => {
  it.each([
    [["--concurrency", "0"], "--concurrency must be a whole number from 1 to 16"],
    [["--concurrency", "17"], "--concurrency must be a whole number from 1 to 16"],
    [["--concurrency", "2.5"], "--concurrency must be a whole number from 1 to 16"],
    [["--batch-size", "0"], "--batch-size must be a whole number from 1 to 10000"],
    [["--batch-size", "10001"], "--batch-size must be a whole number from 1 to 10000"],
    [["--input-format", "xml"], "--input-format must be jsonl or csv"],
    [["a.jsonl", "b.jsonl"], "give one file"],
    [["--url", "ftp://x"], "the token-service URL must be http:// or https://"],
  ])("%j is a usage error, before anything is sent", async (argv, message) => {
    const { code, stderr } = await run(argv);
    expect(code).toBe(IMPORT_EXIT.usage);
    expect(stderr).toContain(message);
  });

  it("needs LATCHKEY_ADMIN_KEY, and never takes the key as an argument", async () => {
    const { code, stderr } = await run(["keys.jsonl"], { LATCHKEY_ADMIN_KEY: "" });
    expect(code).toBe(IMPORT_EXIT.usage);
    expect(stderr).toContain("set LATCHKEY_ADMIN_KEY");
    expect((await run(["--admin-key", "k"])).code).toBe(IMPORT_EXIT.usage);
  });

  it("names an unknown CSV column and stops before sending anything", async () => {
    const { code, stderr } = await run(["--input-format", "csv"], NOWHERE, "external_id,team,name\nx,y,z\n");
    expect(code).toBe(IMPORT_EXIT.stopped);
    expect(stderr).toContain('CSV header: unknown column(s) "team"');
    expect(stderr).not.toContain("Unavailable");
  });
});
