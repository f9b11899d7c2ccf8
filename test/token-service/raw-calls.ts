// Calls below the generated clients: bytes a well-behaved client would never
// send (unknown fields, invalid UTF-8, unknown JSON keys).
import { connect as http2Connect } from "node:http2";
import { Client, credentials, Metadata, type ServiceError } from "@grpc/grpc-js";

/** A Connect unary POST over h2c: status, and the body as text. */
export async function postConnect(
  baseUrl: string,
  procedure: string,
  body: string | Uint8Array,
  contentType: "application/json" | "application/proto",
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  const session = http2Connect(baseUrl);
  try {
    return await new Promise((resolve, reject) => {
      session.once("error", reject);
      const stream = session.request({
        ":method": "POST",
        ":path": `/${procedure}`,
        "content-type": contentType,
        "connect-protocol-version": "1",
        ...headers,
      });
      let status = 0;
      const chunks: Buffer[] = [];
      stream.on("response", (h) => {
        status = Number(h[":status"]);
      });
      stream.on("data", (chunk: Buffer) => chunks.push(chunk));
      stream.once("error", reject);
      stream.once("end", () => resolve({ status, body: Buffer.concat(chunks).toString("utf8") }));
      stream.end(typeof body === "string" ? body : Buffer.from(body));
    });
  } finally {
    session.close();
  }
}

/**
 * A Connect unary GET over h2c (`?connect=v1&encoding=json&message=…`), the
 * form connect-es sends for side-effect-free methods: status, headers and body.
 */
export async function getConnect(
  baseUrl: string,
  procedure: string,
  message: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  const query = new URLSearchParams({ connect: "v1", encoding: "json", message: JSON.stringify(message) });
  const session = http2Connect(baseUrl);
  try {
    return await new Promise((resolve, reject) => {
      session.once("error", reject);
      const stream = session.request({ ":method": "GET", ":path": `/${procedure}?${query}`, ...headers });
      let status = 0;
      let responseHeaders: Record<string, unknown> = {};
      const chunks: Buffer[] = [];
      stream.on("response", (h) => {
        status = Number(h[":status"]);
        responseHeaders = { ...h };
      });
      stream.on("data", (chunk: Buffer) => chunks.push(chunk));
      stream.once("error", reject);
      stream.once("end", () =>
        resolve({ status, headers: responseHeaders, body: Buffer.concat(chunks).toString("utf8") }),
      );
      stream.end();
    });
  } finally {
    session.close();
  }
}

/** A native gRPC unary call with hand-made request bytes; resolves the response bytes or the error. */
export async function rawGrpc(
  address: string,
  procedure: string,
  request: Uint8Array,
  headers: Record<string, string> = {},
): Promise<{ response?: Buffer; error?: ServiceError }> {
  const client = new Client(address, credentials.createInsecure());
  const metadata = new Metadata();
  for (const [key, value] of Object.entries(headers)) metadata.set(key, value);
  try {
    return await new Promise((resolve) => {
      client.makeUnaryRequest(
        `/${procedure}`,
        (bytes: Uint8Array) => Buffer.from(bytes),
        (bytes: Buffer) => bytes,
        request,
        metadata,
        (error, response) => resolve(error ? { error } : { response: response ?? Buffer.alloc(0) }),
      );
    });
  } finally {
    client.close();
  }
}

/** A protobuf length-delimited field: tag, length, bytes (lengths under 128 only). */
export function lengthDelimited(fieldNumber: number, bytes: Uint8Array): Uint8Array {
  if (bytes.length > 127) throw new RangeError("keep test fields short");
  return Uint8Array.from([(fieldNumber << 3) | 2, bytes.length, ...bytes]);
}
