// A small OTLP/HTTP trace collector for tests: an HTTP server on a free port that accepts
// `POST /v1/traces` in protobuf (what @opentelemetry/exporter-trace-otlp-proto sends), decodes the
// fields a test asserts on with @bufbuild/protobuf's wire reader, and keeps the raw bodies too, so a
// test can search them for secrets. Written here because no collector binary is available on these
// machines (see NOTES.md), and decoding a handful of OTLP fields by field number is ~100 lines.
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { gunzipSync } from "node:zlib";
import { BinaryReader, type WireType } from "@bufbuild/protobuf/wire";

/** One exported span, as a test reads it. */
export interface CollectedSpan {
  /** `service.name` of the resource that exported it. */
  readonly service: string;
  readonly traceId: string;
  readonly spanId: string;
  /** "" for a root span. */
  readonly parentSpanId: string;
  readonly name: string;
  /** OTLP SpanKind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  readonly kind: number;
  readonly attributes: Readonly<Record<string, string | number | boolean>>;
  readonly links: readonly { readonly traceId: string; readonly spanId: string }[];
  /** OTLP status code: 0 unset, 1 ok, 2 error. */
  readonly statusCode: number;
}

/** A running collector. */
export interface OtlpCollector {
  /** `http://127.0.0.1:<port>`: the value of OTEL_EXPORTER_OTLP_ENDPOINT. */
  readonly endpoint: string;
  readonly spans: CollectedSpan[];
  /** Every request body received, decompressed. */
  readonly bodies: Buffer[];
  /** Waits until `match` holds for the spans received, polling; throws after `timeoutMs`. */
  waitFor(match: (spans: readonly CollectedSpan[]) => boolean, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

/** Starts a collector on 127.0.0.1 and a port the kernel picks. */
export async function startOtlpCollector(): Promise<OtlpCollector> {
  const spans: CollectedSpan[] = [];
  const bodies: Buffer[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      if (req.method !== "POST" || req.url !== "/v1/traces") {
        res.writeHead(404).end();
        return;
      }
      let body = Buffer.concat(chunks);
      if (req.headers["content-encoding"] === "gzip") body = gunzipSync(body);
      bodies.push(body);
      try {
        spans.push(...decodeExportRequest(body));
      } catch {
        res.writeHead(400).end();
        return;
      }
      // An empty ExportTraceServiceResponse.
      res.writeHead(200, { "content-type": "application/x-protobuf" }).end();
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    spans,
    bodies,
    async waitFor(match, timeoutMs = 10_000) {
      const started = Date.now();
      while (!match(spans)) {
        if (Date.now() - started > timeoutMs)
          throw new Error(
            `spans not collected within ${timeoutMs} ms; have: ${spans.map((s) => `${s.service}:${s.name}`).join(", ")}`,
          );
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Calls `field` for each field of the message in `bytes`; `field` must consume its value or return false to skip it. */
function fields(bytes: Uint8Array, field: (no: number, reader: BinaryReader) => boolean): void {
  const reader = new BinaryReader(bytes);
  while (reader.pos < reader.len) {
    const [no, wireType] = reader.tag();
    if (!field(no, reader)) reader.skip(wireType as WireType);
  }
}

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");

/** Decodes `opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest`. */
export function decodeExportRequest(body: Uint8Array): CollectedSpan[] {
  const out: CollectedSpan[] = [];
  fields(body, (no, reader) => {
    if (no !== 1) return false; // resource_spans
    let service = "";
    const scopeSpans: Uint8Array[] = [];
    fields(reader.bytes(), (rsNo, rs) => {
      if (rsNo === 1) {
        // Resource: attributes (1)
        fields(rs.bytes(), (resNo, res) => {
          if (resNo !== 1) return false;
          const [key, value] = keyValue(res.bytes());
          if (key === "service.name") service = String(value);
          return true;
        });
        return true;
      }
      if (rsNo === 2) {
        scopeSpans.push(rs.bytes());
        return true;
      }
      return false;
    });
    for (const scope of scopeSpans) {
      fields(scope, (ssNo, ss) => {
        if (ssNo !== 2) return false; // spans
        out.push(decodeSpan(ss.bytes(), service));
        return true;
      });
    }
    return true;
  });
  return out;
}

function decodeSpan(bytes: Uint8Array, service: string): CollectedSpan {
  let traceId = "";
  let spanId = "";
  let parentSpanId = "";
  let name = "";
  let kind = 0;
  let statusCode = 0;
  const attributes: Record<string, string | number | boolean> = {};
  const links: { traceId: string; spanId: string }[] = [];
  fields(bytes, (no, reader) => {
    switch (no) {
      case 1:
        traceId = hex(reader.bytes());
        return true;
      case 2:
        spanId = hex(reader.bytes());
        return true;
      case 4:
        parentSpanId = hex(reader.bytes());
        return true;
      case 5:
        name = reader.string();
        return true;
      case 6:
        kind = reader.int32();
        return true;
      case 9: {
        const [key, value] = keyValue(reader.bytes());
        attributes[key] = value;
        return true;
      }
      case 13: {
        const link = { traceId: "", spanId: "" };
        fields(reader.bytes(), (linkNo, l) => {
          if (linkNo === 1) link.traceId = hex(l.bytes());
          else if (linkNo === 2) link.spanId = hex(l.bytes());
          else return false;
          return true;
        });
        links.push(link);
        return true;
      }
      case 15:
        fields(reader.bytes(), (statusNo, s) => {
          if (statusNo !== 3) return false;
          statusCode = s.int32();
          return true;
        });
        return true;
      default:
        return false;
    }
  });
  return { service, traceId, spanId, parentSpanId, name, kind, attributes, links, statusCode };
}

/** A `KeyValue` with a scalar `AnyValue` (string, bool, int, double). */
function keyValue(bytes: Uint8Array): [string, string | number | boolean] {
  let key = "";
  let value: string | number | boolean = "";
  fields(bytes, (no, reader) => {
    if (no === 1) {
      key = reader.string();
      return true;
    }
    if (no !== 2) return false;
    fields(reader.bytes(), (valueNo, v) => {
      if (valueNo === 1) value = v.string();
      else if (valueNo === 2) value = v.bool();
      else if (valueNo === 3) value = Number(v.int64());
      else if (valueNo === 4) value = v.double();
      else return false;
      return true;
    });
    return true;
  });
  return [key, value];
}
