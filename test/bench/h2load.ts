import { execFile } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { promisify } from "node:util";

const run = promisify(execFile);

/** What one h2load run measured. */
export interface H2loadResult {
  readonly requestsPerSecond: number;
  readonly succeeded: number;
  readonly failed: number;
}

/**
 * Frames a protobuf message as one gRPC message (uncompressed flag + length)
 * and writes it to `path` for h2load's `-d`.
 */
export function writeGrpcFrame(path: string, message: Uint8Array): void {
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt8(0, 0);
  frame.writeUInt32BE(message.length, 1);
  Buffer.from(message).copy(frame, 5);
  writeFileSync(path, frame);
}

/**
 * Runs h2load (Debian's nghttp2-client) in its own process: `requests` unary
 * gRPC POSTs of the frame in `dataFile` over `connections` h2c connections
 * with `streams` concurrent streams each.
 */
export async function h2loadGrpc(options: {
  url: string;
  dataFile: string;
  requests: number;
  connections: number;
  streams: number;
}): Promise<H2loadResult> {
  const { stdout } = await run(
    "h2load",
    [
      "-n",
      String(options.requests),
      "-c",
      String(options.connections),
      "-m",
      String(options.streams),
      "-d",
      options.dataFile,
      "-H",
      "content-type: application/grpc",
      "-H",
      "te: trailers",
      options.url,
    ],
    { maxBuffer: 10 * 1024 * 1024 },
  );
  const rps = /finished in [\d.]+\w+, ([\d.]+) req\/s/.exec(stdout);
  const status = /requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed/.exec(stdout);
  if (!rps || !status) throw new Error(`cannot read h2load output:\n${stdout}`);
  return {
    requestsPerSecond: Number(rps[1]),
    succeeded: Number(status[1]),
    failed: Number(status[2]),
  };
}

/**
 * Sends `requests` GETs over HTTP/1.1 keep-alive connections with h2load and
 * checks that every one got a 2xx (in a warm-up, that h2load ran). The
 * authorization value is never printed.
 */
export async function h2loadHttp1(options: {
  url: string;
  requests: number;
  connections: number;
  authorization: string;
  warmingUp?: boolean;
}): Promise<void> {
  const { stdout } = await run(
    "h2load",
    [
      "--h1",
      "-n",
      String(options.requests),
      "-c",
      String(options.connections),
      "-m",
      "1",
      "-H",
      `authorization: ${options.authorization}`,
      options.url,
    ],
    { maxBuffer: 10 * 1024 * 1024 },
  ).catch((error: NodeJS.ErrnoException) => {
    // The command line holds the key: never print it.
    throw new Error(error.code === "ENOENT" ? "h2load is not installed (nghttp2-client)" : "h2load failed");
  });
  const status = /requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed/.exec(stdout);
  if (options.warmingUp && status) return;
  const codes = /status codes: (\d+) 2xx/.exec(stdout);
  if (!status || Number(status[2]) > 0 || Number(codes?.[1]) !== options.requests)
    throw new Error(`${options.url}: not every request got a 2xx:\n${stdout}`);
}

/** Per-request latencies of one h2load run, and the response bytes it received. */
export interface H2loadLatencies {
  /** Milliseconds from each request's start to the end of its response, in the order they ended. */
  readonly latenciesMs: number[];
  /** Response body bytes received in all (gRPC frames), to tell answers from trailers-only errors. */
  readonly dataBytes: number;
  readonly failed: number;
}

/**
 * Runs h2load with `--log-file` and returns every request's latency: a C client
 * in its own process adds far less jitter to a tail than a Node client in the
 * bench's process does. `headers` are sent on every request and never printed
 * (they may hold a key).
 */
export async function h2loadGrpcLatencies(options: {
  url: string;
  dataFile: string;
  logFile: string;
  requests: number;
  streams: number;
  headers: readonly string[];
}): Promise<H2loadLatencies> {
  const headerArgs = options.headers.flatMap((header) => ["-H", header]);
  const { stdout } = await run(
    "h2load",
    [
      "-n",
      String(options.requests),
      "-c",
      "1",
      "-m",
      String(options.streams),
      "-d",
      options.dataFile,
      "--log-file",
      options.logFile,
      "-H",
      "content-type: application/grpc",
      "-H",
      "te: trailers",
      ...headerArgs,
      options.url,
    ],
    { maxBuffer: 10 * 1024 * 1024 },
  ).catch((error: NodeJS.ErrnoException) => {
    throw new Error(error.code === "ENOENT" ? "h2load is not installed (nghttp2-client)" : "h2load failed");
  });
  const status = /requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed/.exec(stdout);
  const data = /traffic: .*, [\d.]+\w* \((\d+)\) data/.exec(stdout);
  if (!status || !data) throw new Error("cannot read h2load output");
  const latenciesMs = readFileSync(options.logFile, "utf8")
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => Number(line.split("\t")[2]) / 1000);
  return { latenciesMs, dataBytes: Number(data[1]), failed: Number(status[2]) };
}
