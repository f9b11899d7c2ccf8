import { createInterface } from "node:readline";
import type { Readable } from "node:stream";
import { fromJson, type JsonObject } from "@bufbuild/protobuf";
import { type ImportKey, ImportKeySchema } from "@latchkey/proto";
import { parse } from "csv-parse";

/** One row of an import file: the key it describes, or why it could not be read. */
export type SourceRow =
  | { readonly line: number; readonly key: ImportKey }
  | { readonly line: number; readonly error: string };

/** The two file formats the import command reads. */
export type SourceFormat = "jsonl" | "csv";

// CSV columns, by their proto JSON names; a header may use these or the snake_case field names.
const CSV_COLUMNS = new Map<string, string>(
  ImportKeySchema.fields.flatMap((field) => [
    [field.name, field.jsonName],
    [field.jsonName, field.jsonName],
  ]),
);

/**
 * Reads import rows from JSON Lines (one ImportKey in proto JSON per line) or
 * CSV (a header row naming ImportKey fields; `scopes` space-separated,
 * `metadata` a JSON object), with each row's line number. Errors never quote
 * the row: it may hold a token.
 *
 * @example
 * ```ts
 * for await (const row of readImportRows(process.stdin, "jsonl")) if ("key" in row) batch.push(row.key);
 * ```
 * @throws Error for a CSV header naming an unknown column, or CSV broken beyond one row (an unclosed quote).
 */
export async function* readImportRows(input: Readable, format: SourceFormat): AsyncGenerator<SourceRow> {
  if (format === "jsonl") yield* readJsonLines(input);
  else yield* readCsv(input);
}

async function* readJsonLines(input: Readable): AsyncGenerator<SourceRow> {
  let line = 0;
  for await (const text of createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY })) {
    line += 1;
    if (text.trim() === "") continue;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      // JSON.parse's message quotes the text, and the text may hold a token.
      yield { line, error: "malformed JSON" };
      continue;
    }
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      yield { line, error: "not a JSON object" };
      continue;
    }
    yield decode(line, value as JsonObject);
  }
}

async function* readCsv(input: Readable): AsyncGenerator<SourceRow> {
  const parser = input.pipe(
    parse({ info: true, skip_empty_lines: true, relax_column_count: true, bom: true, trim: false }),
  );
  let header: string[] | undefined;
  let previousEnd = 0;
  let previousEmpty = 0;
  for await (const { record, info } of parser as AsyncIterable<{
    record: string[];
    info: { empty_lines: number };
  }>) {
    const line = previousEnd + 1 + (info.empty_lines - previousEmpty);
    // Not info.lines: csv-parse counts a quoted \r\n as two lines.
    previousEnd =
      line + record.reduce((breaks, cell) => breaks + (cell.match(/\r\n|\r|\n/g)?.length ?? 0), 0);
    previousEmpty = info.empty_lines;
    if (header === undefined) {
      header = record.map((name) => name.trim());
      const unknown = header.filter((name) => !CSV_COLUMNS.has(name));
      if (unknown.length > 0) {
        throw new Error(
          `CSV header: unknown column(s) ${unknown.map((n) => JSON.stringify(n.slice(0, 40))).join(", ")}; ` +
            `columns are ${ImportKeySchema.fields.map((field) => field.name).join(", ")}`,
        );
      }
      continue;
    }
    if (record.length !== header.length) {
      yield { line, error: `${record.length} fields where the header has ${header.length}` };
      continue;
    }
    const object: JsonObject = {};
    let error: string | undefined;
    for (const [index, name] of header.entries()) {
      const cell = record[index] ?? "";
      if (cell === "") continue;
      const field = CSV_COLUMNS.get(name) ?? name;
      if (field === "scopes") {
        object[field] = cell.split(/[\s,]+/).filter((scope) => scope !== "");
      } else if (field === "metadata") {
        try {
          object[field] = JSON.parse(cell);
        } catch {
          error = "metadata: must be a JSON object of strings";
        }
      } else {
        object[field] = cell;
      }
    }
    yield error === undefined ? decode(line, object) : { line, error };
  }
}

/** Proto JSON to an ImportKey; the error names the field, never its value. */
function decode(line: number, object: JsonObject): SourceRow {
  try {
    return { line, key: fromJson(ImportKeySchema, object) };
  } catch (error) {
    const message = String((error as Error).message);
    const unknown = /key "([^"]{0,64})[^"]*" is unknown/.exec(message);
    if (unknown) return { line, error: `unknown field ${JSON.stringify(unknown[1])}` };
    const field = /field latchkey\.v1\.ImportKey\.(\w+)/.exec(message);
    if (field) return { line, error: `${field[1]}: wrong type or shape` };
    if (/oneof/.test(message)) return { line, error: "only one of token and token_sha256 may be set" };
    return { line, error: "not an ImportKey object" };
  }
}
