import { readFileSync } from "node:fs";
import { Client, credentials } from "@grpc/grpc-js";

// A closed-loop gRPC load generator for request bodies h2load cannot vary:
// `concurrency` calls in flight, each sending the next of the pre-encoded
// request messages in `file` (length-prefixed), until `requests` are done.
// Run in its own process. Prints one JSON line: { rps, ok, failed }.

const [address = "", method = "", file = "", concurrencyArg = "64", requestsArg = "10000"] =
  process.argv.slice(2);
const concurrency = Number(concurrencyArg);
const requests = Number(requestsArg);
const blob = readFileSync(file);
const bodies: Buffer[] = [];
for (let offset = 0; offset < blob.length; ) {
  const length = blob.readUInt32BE(offset);
  bodies.push(blob.subarray(offset + 4, offset + 4 + length));
  offset += 4 + length;
}
const client = new Client(address, credentials.createInsecure());
const identity = (value: Buffer) => value;
let started = 0;
let ok = 0;
let failed = 0;
const begin = performance.now();
await new Promise<void>((resolve) => {
  const next = () => {
    if (started >= requests) {
      if (ok + failed === requests) resolve();
      return;
    }
    const body = bodies[started % bodies.length] as Buffer;
    started++;
    client.makeUnaryRequest(method, identity, identity, body, (error) => {
      if (error) failed++;
      else ok++;
      next();
    });
  };
  for (let i = 0; i < concurrency; i++) next();
});
const seconds = (performance.now() - begin) / 1000;
process.stdout.write(`${JSON.stringify({ rps: requests / seconds, ok, failed })}\n`);
client.close();
