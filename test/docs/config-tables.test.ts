// The README's configuration tables are the services' schemas, written for people: one table per
// service, listing exactly the variables its config reads, each with its file key and its default.
// The defaults are checked by parsing: the value the table states must load to what the schema
// gives when the variable is left out, so a default changed in code fails here.
import { readFileSync } from "node:fs";
import { loadSidecarConfig, SIDECAR_ENV } from "@latchkey/sidecar";
import { loadTokenServiceConfig, TOKEN_SERVICE_ENV } from "@latchkey/token-service";
import { describe, expect, it } from "vitest";

const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");

interface Row {
  readonly variables: readonly string[];
  readonly settings: readonly string[];
  readonly default: string;
}

interface Table {
  /** The heading the table sits under. */
  readonly heading: string;
  readonly header: readonly string[];
  readonly rows: readonly Row[];
}

/** Cells of a Markdown table line; `\|` inside a cell is not a separator. */
function cells(line: string): string[] {
  return line
    .trim()
    .replace(/^\||\|$/g, "")
    .split(/(?<!\\)\|/)
    .map((cell) => cell.trim());
}

/** The backtick-quoted names in a cell, in order. */
function quoted(cell: string): string[] {
  return [...cell.matchAll(/`([^`]+)`/g)].map((match) => match[1] ?? "");
}

/** Every table in a Markdown document, with the nearest heading above it. */
function tables(markdown: string): Table[] {
  const found: Table[] = [];
  let heading = "";
  const lines = markdown.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? "";
    if (/^#{1,6} /.test(line)) heading = line;
    if (!line.startsWith("|") || !/^\|[\s:|-]+\|$/.test(lines[i + 1] ?? "")) continue;
    const header = cells(line);
    const rows: Row[] = [];
    for (i += 2; (lines[i] ?? "").startsWith("|"); i++) {
      const [variables = "", settings = "", stated = ""] = cells(lines[i] ?? "");
      rows.push({ variables: quoted(variables), settings: quoted(settings), default: stated });
    }
    found.push({ heading, header, rows });
  }
  return found;
}

const all = tables(readme);

interface Service {
  readonly name: string;
  readonly env: Readonly<Record<string, string>>;
  /** Loads the configuration from an environment, as the service does at start-up. */
  load(source: NodeJS.ProcessEnv): Record<string, unknown>;
  /** Variables a start needs in any case (the table says `required`). */
  readonly base: NodeJS.ProcessEnv;
}

const services: Service[] = [
  {
    name: "token-service",
    env: TOKEN_SERVICE_ENV,
    load: (source) => loadTokenServiceConfig(source),
    base: {},
  },
  {
    name: "sidecar",
    env: SIDECAR_ENV,
    load: (source) => loadSidecarConfig(source),
    base: { LATCHKEY_UPSTREAM: "http://127.0.0.1:3000" },
  },
];

/** A parsed value in a form `toEqual` compares by content (URLs and address lists by their text). */
function comparable(value: unknown): unknown {
  if (value instanceof URL) return value.href;
  if (typeof value === "object" && value !== null && "entries" in value && "list" in value)
    return (value as { entries: unknown }).entries;
  return value;
}

/** Every table in the README naming any service's variable. */
const configTables = all.filter((table) =>
  table.rows.some((row) => row.variables.some((v) => services.some((s) => Object.values(s.env).includes(v)))),
);

describe("the README's configuration", () => {
  it("has one table per service, under ## Configuration, and no other table of variables", () => {
    expect(configTables.map((table) => table.heading)).toEqual(
      services.map((service) => expect.stringMatching(`^### ${service.name} `)),
    );
    const section = readme.slice(readme.indexOf("\n## Configuration"));
    const end = section.indexOf("\n## ", 1);
    for (const table of configTables) {
      expect(section.indexOf(table.heading), table.heading).toBeGreaterThan(0);
      expect(section.indexOf(table.heading), table.heading).toBeLessThan(end);
      expect(table.header).toEqual(["variable", "setting", "default", "meaning"]);
    }
  });
});

describe.each(services)("the README's $name configuration table", (service) => {
  const known = new Set(Object.values(service.env));
  const mine = configTables.filter((table) => table.heading.startsWith(`### ${service.name} `));

  it("lists exactly the variables the config reads, each next to its own file key", () => {
    const rows = mine[0]?.rows ?? [];
    const listed = rows.flatMap((row) => row.variables);
    expect([...listed].sort()).toEqual([...known].sort());
    expect(new Set(listed).size, "a variable listed twice").toBe(listed.length);
    const byVariable = Object.fromEntries(Object.entries(service.env).map(([key, v]) => [v, key]));
    for (const row of rows) {
      expect(row.settings, row.variables.join(", ")).toEqual(row.variables.map((v) => byVariable[v]));
    }
  });

  it("states each default as the schema has it", () => {
    const defaults = service.load(service.base);
    for (const row of mine[0]?.rows ?? []) {
      row.variables.forEach((variable, i) => {
        const setting = row.settings[i] ?? "";
        const stated = row.default;
        if (stated === "required") {
          const { [variable]: _, ...without } = service.base;
          expect(() => service.load(without), `${variable} is required`).toThrow(variable);
        } else if (stated === "unset") {
          expect(defaults[setting], `${variable} has no default`).toBeUndefined();
        } else {
          const [value] = quoted(stated);
          expect(value, `${variable}: state the default as \`value\`, unset or required`).toBeDefined();
          const given = service.load({ ...service.base, [variable]: value });
          expect(comparable(defaults[setting]), `${variable} defaults to ${value}`).toEqual(
            comparable(given[setting]),
          );
          expect(defaults[setting], `${variable} has a default`).toBeDefined();
        }
      });
    }
  });
});
