import { createReadStream, readFileSync, statSync } from "node:fs";
import { type Readable, Transform } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { type ImportKey, ImportKeySchema, ImportRowStatus, TokenService } from "@latchkey/proto";
import { DEFAULT_MAX_RECEIVE_MESSAGE_BYTES } from "../server/shared/running-server.js";
import { createImportProgress, type ImportTotals } from "./import-progress.js";
import { readImportRows, type SourceFormat } from "./import-source.js";

/** Exit codes of `latchkey-token-service import`. */
export const IMPORT_EXIT = {
  /** Every row is in: imported now or before. */
  ok: 0,
  /** Stopped by an error the rows cannot fix (the service, the admin key); batches sent before it are in. */
  stopped: 1,
  /** Bad arguments or settings; nothing was sent. */
  usage: 2,
  /** Finished; the bad rows reported were skipped, every other row is in. */
  badRows: 3,
} as const;

// Below the service's request limit, with room for the request's own framing.
const MAX_REQUEST_BYTES = DEFAULT_MAX_RECEIVE_MESSAGE_BYTES - 4 * 1024;
const DEFAULT_BATCH = 1_000;
// Batches in flight at once: while one is in its transaction the next is being read, encoded and
// sent, and PostgreSQL works on several; one at a time leaves both sides idle half the time.
const DEFAULT_CONCURRENCY = 4;
const MAX_RETRIES = 5;

const USAGE = `usage: latchkey-token-service import [FILE | -] [--input-format jsonl|csv] [--batch-size N]
                                    [--concurrency N] [--url URL]

Reads keys to import from FILE (or standard input) as JSON Lines or CSV and
sends them to the token-service's ImportKeys in batches (up to 1000 keys, and
64 KiB, each), --concurrency of them (default ${DEFAULT_CONCURRENCY}, 1-16) at a time.
  LATCHKEY_ADMIN_KEY              the root key or a team admin key (required; never an argument)
  LATCHKEY_TOKEN_SERVICE_URL      the token-service (default http://127.0.0.1:8082)
  LATCHKEY_TOKEN_SERVICE_CA_FILE  PEM CA of its certificate, for an https:// URL
  LATCHKEY_TOKEN_SERVICE_CLIENT_CERT, LATCHKEY_TOKEN_SERVICE_CLIENT_KEY
                                  PEM client certificate and key, both or neither, for an
                                  https:// URL that asks for one (LATCHKEY_GRPC_CLIENT_CA_FILE)
`;

/** Where the command reads and writes; the process's own streams in production. */
export interface ImportCommandIo {
  readonly argv: readonly string[];
  readonly env: NodeJS.ProcessEnv;
  readonly stdin: Readable;
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
}

interface PendingRow {
  readonly line: number;
  readonly key: ImportKey;
  readonly bytes: number;
}

/**
 * `latchkey-token-service import`: reads rows, sends them in batches that fit
 * one request, reports each bad row by line number and skips it. A batch the
 * service rejects a row of is written by nobody; the command sends it again
 * without the bad rows, so every batch is written whole or not at all.
 *
 * @example
 * ```ts
 * process.exitCode = await runImportCommand({ argv: ["keys.csv"], env: process.env, ...process });
 * ```
 * @returns the exit code ({@link IMPORT_EXIT}).
 */
export async function runImportCommand(io: ImportCommandIo): Promise<number> {
  const fail = (message: string) => {
    io.stderr.write(`latchkey-token-service import: ${message}\n`);
    return IMPORT_EXIT.usage;
  };
  let args: ReturnType<typeof parseImportArgs>;
  try {
    args = parseImportArgs(io.argv);
  } catch (error) {
    return fail(`${(error as Error).message}\n\n${USAGE}`);
  }
  if (args.help) {
    io.stdout.write(USAGE);
    return IMPORT_EXIT.ok;
  }
  const adminKey = io.env.LATCHKEY_ADMIN_KEY ?? "";
  if (adminKey === "") return fail("set LATCHKEY_ADMIN_KEY to the root key or a team admin key");
  const url = args.url ?? io.env.LATCHKEY_TOKEN_SERVICE_URL ?? "http://127.0.0.1:8082";
  if (!URL.canParse(url) || !["http:", "https:"].includes(new URL(url).protocol)) {
    return fail(`the token-service URL must be http:// or https://, not ${JSON.stringify(url)}`);
  }
  let ca: Buffer | undefined;
  const caFile = io.env.LATCHKEY_TOKEN_SERVICE_CA_FILE;
  if (caFile) {
    try {
      ca = readFileSync(caFile);
    } catch (error) {
      return fail(`LATCHKEY_TOKEN_SERVICE_CA_FILE: ${(error as Error).message}`);
    }
  }
  const clientCertificate = readClientCertificate(io.env, new URL(url).protocol);
  if (typeof clientCertificate === "string") return fail(clientCertificate);
  let input: Readable;
  let totalBytes: number | undefined;
  if (args.file === undefined || args.file === "-") {
    input = io.stdin;
  } else {
    try {
      totalBytes = statSync(args.file).size;
    } catch (error) {
      return fail(`cannot read ${args.file}: ${(error as NodeJS.ErrnoException).code ?? "error"}`);
    }
    input = createReadStream(args.file);
  }
  const format: SourceFormat =
    args.inputFormat ?? (args.file?.toLowerCase().endsWith(".csv") ? "csv" : "jsonl");

  const client = createClient(
    TokenService,
    createGrpcTransport({
      baseUrl: url,
      nodeOptions: { ...(ca ? { ca } : {}), ...clientCertificate },
      interceptors: [
        (next) => (request) => {
          request.header.set("authorization", `Bearer ${adminKey}`);
          return next(request);
        },
      ],
    }),
  );
  const totals: ImportTotals = { rows: 0, imported: 0, alreadyImported: 0, bad: 0 };
  const badLines: number[] = [];
  let bytesRead = 0;
  const counted = input.pipe(
    new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        bytesRead += chunk.length;
        callback(null, chunk);
      },
    }),
  );
  const progress = createImportProgress({ out: io.stderr, totalBytes });
  const reportBad = (line: number, problem: string) => {
    totals.bad += 1;
    badLines.push(line);
    progress.clear();
    io.stderr.write(`line ${line}: ${problem}\n`);
  };

  async function send(rows: PendingRow[]): Promise<void> {
    let batch = rows;
    let retries = 0;
    while (batch.length > 0) {
      let response: Awaited<ReturnType<typeof client.importKeys>>;
      try {
        response = await client.importKeys({ keys: batch.map((row) => row.key) });
      } catch (error) {
        // ImportKeys is idempotent, so a batch whose fate is unknown is simply sent again: if it was
        // written, the retry finds its rows already there.
        if (retryable(error) && retries < MAX_RETRIES) {
          await sleep(100 * 2 ** retries);
          retries += 1;
          continue;
        }
        throw error;
      }
      if (response.committed) {
        totals.imported += response.imported;
        totals.alreadyImported += response.alreadyImported;
        return;
      }
      const rejected = new Set<number>();
      for (const result of response.results) {
        if (result.status !== ImportRowStatus.REJECTED) continue;
        const row = batch[result.index];
        if (row === undefined || rejected.has(result.index)) continue;
        rejected.add(result.index);
        reportBad(row.line, result.error);
      }
      if (rejected.size === 0) throw new Error("the service wrote nothing and named no bad row");
      batch = batch.filter((_, index) => !rejected.has(index));
    }
  }

  // Batches in flight; the first error stops the reading, and those already sent finish first.
  const inflight = new Set<Promise<void>>();
  let failure: { error: unknown } | undefined;
  const start = (rows: PendingRow[]) => {
    const sent: Promise<void> = send(rows)
      .catch((error: unknown) => {
        failure ??= { error };
      })
      .finally(() => inflight.delete(sent));
    inflight.add(sent);
  };
  const settle = async (room: number) => {
    while (inflight.size > room) await Promise.race(inflight);
    progress.update(totals, bytesRead);
    if (failure !== undefined) throw failure.error;
  };
  let pending: PendingRow[] = [];
  let pendingBytes = 0;
  let lastLine = 0;
  const flush = async () => {
    if (failure !== undefined) throw failure.error;
    if (pending.length > 0) start(pending);
    pending = [];
    pendingBytes = 0;
    await settle(args.concurrency - 1);
  };
  try {
    for await (const row of readImportRows(counted, format)) {
      totals.rows += 1;
      lastLine = row.line;
      if ("error" in row) {
        reportBad(row.line, row.error);
        continue;
      }
      // Each repeated field costs its bytes plus a tag and a length.
      const bytes = toBinary(ImportKeySchema, row.key).length + 6;
      if (bytes > MAX_REQUEST_BYTES) {
        reportBad(row.line, `the row is ${bytes} bytes; one request carries at most ${MAX_REQUEST_BYTES}`);
        continue;
      }
      if (pending.length >= args.batchSize || pendingBytes + bytes > MAX_REQUEST_BYTES) await flush();
      pending.push({ line: row.line, key: row.key, bytes });
      pendingBytes += bytes;
    }
    await flush();
    await settle(0);
  } catch (error) {
    // What was sent is in or out whole: wait for it, so the summary counts it.
    await Promise.allSettled(inflight);
    progress.clear();
    const reason =
      error instanceof ConnectError
        ? `${Code[error.code]}: ${error.rawMessage}`
        : String((error as Error).message ?? error);
    io.stderr.write(
      `latchkey-token-service import: stopped${lastLine > 0 ? ` near line ${lastLine}` : ""}: ${reason}\n` +
        "Batches sent before this are imported whole, nothing after; run the same command again to go on " +
        "(rows already imported are skipped).\n",
    );
    io.stdout.write(summary(totals, badLines));
    return IMPORT_EXIT.stopped;
  }
  progress.clear();
  io.stdout.write(summary(totals, badLines));
  return totals.bad > 0 ? IMPORT_EXIT.badRows : IMPORT_EXIT.ok;
}

/**
 * Errors after which sending the batch again is right: another import wrote
 * some of its keys meanwhile (ABORTED), the service is restarting or
 * unreachable for a moment (UNAVAILABLE), or the server refused or cut the
 * stream on a connection it was closing (its connection age limit sends
 * GOAWAY, then cancels what outlives the grace period).
 */
function retryable(error: unknown): boolean {
  if (!(error instanceof ConnectError)) return false;
  // CANCELED here is the server's: the command never cancels a call (a closing connection's grace ran out).
  if ([Code.Aborted, Code.Unavailable, Code.Canceled].includes(error.code)) return true;
  // A response cut off before its gRPC status (the connection closed under a stream in flight) says
  // nothing about the batch either: sent again, it is found written or written then.
  return /REFUSED_STREAM|GOAWAY|ECONNRESET|protocol error: missing status/.test(error.rawMessage);
}

function summary(totals: Readonly<ImportTotals>, badLines: readonly number[]): string {
  const shown = badLines.slice(0, 20).join(", ");
  const more = badLines.length > 20 ? `, … (${badLines.length - 20} more)` : "";
  return (
    `imported ${totals.imported}, already there ${totals.alreadyImported}, bad rows ${totals.bad} ` +
    `(of ${totals.rows} rows read)\n` +
    (totals.bad > 0 ? `bad rows skipped, by line: ${shown}${more}\n` : "")
  );
}

function parseImportArgs(argv: readonly string[]) {
  const { values, positionals } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    strict: true,
    options: {
      "input-format": { type: "string" },
      "batch-size": { type: "string" },
      concurrency: { type: "string" },
      url: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (positionals.length > 1) throw new Error("give one file (or - for standard input)");
  const inputFormat = values["input-format"];
  if (inputFormat !== undefined && inputFormat !== "jsonl" && inputFormat !== "csv") {
    throw new Error("--input-format must be jsonl or csv");
  }
  const batchText = values["batch-size"];
  const batchSize = batchText === undefined ? DEFAULT_BATCH : Number(batchText);
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 10_000) {
    throw new Error("--batch-size must be a whole number from 1 to 10000");
  }
  const concurrencyText = values.concurrency;
  const concurrency = concurrencyText === undefined ? DEFAULT_CONCURRENCY : Number(concurrencyText);
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 16) {
    throw new Error("--concurrency must be a whole number from 1 to 16");
  }
  return {
    file: positionals[0],
    inputFormat: inputFormat as SourceFormat | undefined,
    batchSize,
    concurrency,
    url: values.url,
    help: values.help === true,
  };
}

/**
 * The client certificate and key from LATCHKEY_TOKEN_SERVICE_CLIENT_CERT/_KEY
 * (both or neither, https only), or the error to print.
 */
function readClientCertificate(
  env: NodeJS.ProcessEnv,
  protocol: string,
): { cert?: Buffer; key?: Buffer } | string {
  const certFile = env.LATCHKEY_TOKEN_SERVICE_CLIENT_CERT ?? "";
  const keyFile = env.LATCHKEY_TOKEN_SERVICE_CLIENT_KEY ?? "";
  if (certFile === "" && keyFile === "") return {};
  if (certFile === "" || keyFile === "")
    return "set both LATCHKEY_TOKEN_SERVICE_CLIENT_CERT and LATCHKEY_TOKEN_SERVICE_CLIENT_KEY, or neither";
  if (protocol !== "https:")
    return "LATCHKEY_TOKEN_SERVICE_CLIENT_CERT needs an https:// token-service URL (a client certificate is sent only over TLS)";
  const read = (file: string, setting: string): Buffer | string => {
    try {
      return readFileSync(file);
    } catch (error) {
      return `${setting}: cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? "error"}`;
    }
  };
  const cert = read(certFile, "LATCHKEY_TOKEN_SERVICE_CLIENT_CERT");
  if (typeof cert === "string") return cert;
  const key = read(keyFile, "LATCHKEY_TOKEN_SERVICE_CLIENT_KEY");
  if (typeof key === "string") return key;
  return { cert, key };
}
