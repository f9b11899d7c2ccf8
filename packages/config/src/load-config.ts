import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import type { z } from "zod";

/**
 * Thrown when configuration is invalid. The message names every bad setting by
 * the name the operator used (the environment variable, or the file key), so
 * start-up fails with something a person can act on.
 */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  constructor(
    message: string,
    /** The settings at fault, by environment variable or file key. */
    readonly settings: readonly string[],
  ) {
    super(message);
  }
}

/** Options of {@link loadConfig}. */
export interface LoadConfigOptions<S extends z.ZodObject> {
  /** The schema; its defaults are the lowest layer. */
  readonly schema: S;
  /** Maps each schema key that may come from the environment to its variable. */
  readonly env: { readonly [K in keyof z.input<S>]?: string };
  /** The environment to read (defaults to `process.env`). */
  readonly source?: NodeJS.ProcessEnv;
  /** Variable naming an optional YAML or JSON config file (default `LATCHKEY_CONFIG`). */
  readonly fileVariable?: string;
}

const MAX_CONFIG_FILE_BYTES = 1024 * 1024;

function readConfigFile(path: string, variable: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new ConfigError(`${variable}: cannot read config file ${path}: ${(error as Error).message}`, [
      variable,
    ]);
  }
  if (text.length > MAX_CONFIG_FILE_BYTES) {
    throw new ConfigError(`${variable}: config file ${path} is larger than 1 MiB`, [variable]);
  }
  let parsed: unknown;
  try {
    // YAML 1.2 is a superset of JSON, so one parser reads both. maxAliasCount
    // stops a billion-laughs file from exhausting memory.
    parsed = parseYaml(text, { maxAliasCount: 100 });
  } catch (error) {
    throw new ConfigError(
      `${variable}: config file ${path} is not valid YAML/JSON: ${(error as Error).message}`,
      [variable],
    );
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new ConfigError(`${variable}: config file ${path} must hold a mapping of settings`, [variable]);
  }
  return parsed as Record<string, unknown>;
}

/**
 * Builds a service's typed configuration from, lowest first: the schema's
 * defaults, an optional config file (path in `LATCHKEY_CONFIG`; keys are the
 * schema's field names), and environment variables. Unknown file keys are an
 * error, so a typo does not silently fall back to a default.
 *
 * @example
 * ```ts
 * const schema = z.object({ listen: z.string().default("0.0.0.0:8081") }).strict();
 * const config = loadConfig({ schema, env: { listen: "LATCHKEY_LISTEN" } });
 * ```
 * @throws ConfigError naming each bad setting.
 */
export function loadConfig<S extends z.ZodObject>(options: LoadConfigOptions<S>): z.output<S> {
  const source = options.source ?? process.env;
  const fileVariable = options.fileVariable ?? "LATCHKEY_CONFIG";
  const filePath = source[fileVariable];
  const merged: Record<string, unknown> = filePath ? readConfigFile(filePath, fileVariable) : {};
  const origin = new Map<string, string>();
  for (const key of Object.keys(merged)) origin.set(key, `${fileVariable} file key "${key}"`);
  for (const [key, variable] of Object.entries(options.env) as Array<[string, string | undefined]>) {
    if (variable === undefined) continue;
    const value = source[variable];
    if (value === undefined || value === "") continue;
    merged[key] = value;
    origin.set(key, variable);
  }
  const result = options.schema.safeParse(merged);
  if (result.success) return result.data;
  const settings: string[] = [];
  const lines = result.error.issues.map((issue) => {
    const key = String(issue.path[0] ?? "");
    const unknownKeys = issue.code === "unrecognized_keys" ? issue.keys : [];
    if (unknownKeys.length > 0) {
      settings.push(...unknownKeys);
      return `${fileVariable}: unknown setting(s) ${unknownKeys.join(", ")}`;
    }
    const name = origin.get(key) ?? options.env[key as keyof z.input<S>] ?? key;
    settings.push(String(name));
    return `${String(name)}: ${issue.message}`;
  });
  throw new ConfigError(`invalid configuration:\n  ${lines.join("\n  ")}`, settings);
}
