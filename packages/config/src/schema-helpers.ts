import { z } from "zod";

/**
 * A `host:port` listen address. Accepts `0.0.0.0:8081`, `127.0.0.1:0`,
 * `[::]:8081` and `:8081` (all interfaces).
 *
 * @example
 * ```ts
 * // prefault, not default: zod 4 applies a default after the transform.
 * const schema = z.object({ listen: listenAddress.prefault("0.0.0.0:8081") });
 * ```
 */
export const listenAddress = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]*):\d{1,5}$/, "must be host:port, e.g. 0.0.0.0:8081")
  .transform((value, ctx) => {
    const index = value.lastIndexOf(":");
    const rawHost = value.slice(0, index);
    const port = Number(value.slice(index + 1));
    if (port > 65535) {
      ctx.addIssue({ code: "custom", message: "port must be 0–65535" });
      return z.NEVER;
    }
    const host = rawHost.startsWith("[") ? rawHost.slice(1, -1) : rawHost || "0.0.0.0";
    return { host, port };
  });

/** A parsed listen address. */
export type ListenAddress = z.output<typeof listenAddress>;

/**
 * A whole number given as a number or a decimal string (environment variables
 * are strings), within bounds.
 *
 * @example
 * ```ts
 * const schema = z.object({ flushMs: integerSetting(10, 60_000).default(5000) });
 * ```
 */
export function integerSetting(min: number, max: number) {
  return z.coerce
    .number({ error: "must be a whole number" })
    .int("must be a whole number")
    .min(min, `must be at least ${min}`)
    .max(max, `must be at most ${max}`);
}

/**
 * A boolean given as `true`/`false`/`1`/`0` (environment variables are strings).
 *
 * @example
 * ```ts
 * const schema = z.object({ tls: booleanSetting.default(false) });
 * ```
 */
export const booleanSetting = z.union([
  z.boolean(),
  z
    .enum(["true", "false", "1", "0"], { error: "must be true or false" })
    .transform((v) => v === "true" || v === "1"),
]);

/**
 * A structured value (a list or a mapping): written as YAML/JSON in the
 * config file, or as JSON in an environment variable. `check` validates it
 * and returns it typed, or throws an Error whose message is reported against
 * the setting's name.
 *
 * @example
 * ```ts
 * const schema = z.object({ keyFormats: structuredSetting((v) => validate(v)).optional() });
 * // LATCHKEY_KEY_FORMATS='[{"name":"oag","kind":"hex","prefix":"oag_"}]'
 * ```
 */
export function structuredSetting<T>(check: (value: unknown) => T) {
  return z.unknown().transform((value, ctx): T => {
    let parsed = value;
    if (typeof value === "string") {
      try {
        parsed = JSON.parse(value);
      } catch {
        ctx.addIssue({ code: "custom", message: "must be JSON (a list or an object)" });
        return z.NEVER;
      }
    }
    try {
      return check(parsed);
    } catch (error) {
      ctx.addIssue({ code: "custom", message: (error as Error).message });
      return z.NEVER;
    }
  });
}
