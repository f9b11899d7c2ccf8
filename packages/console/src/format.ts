import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { Key, Propagation } from "@latchkey/proto";

/** A timestamp as local date and time, or `fallback` when unset. */
export function formatTime(time: Timestamp | undefined, fallback = "never"): string {
  if (time === undefined) return fallback;
  return timestampDate(time).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
}

/** "3 min ago", "in 2 h": how far a time is from now, for scanning a list. */
export function relativeTime(time: Timestamp | undefined, fallback = "never"): string {
  if (time === undefined) return fallback;
  const seconds = Math.round((timestampDate(time).getTime() - Date.now()) / 1000);
  const abs = Math.abs(seconds);
  const [value, unit] =
    abs < 60
      ? [abs, "s"]
      : abs < 3600
        ? [Math.round(abs / 60), "min"]
        : abs < 86_400
          ? [Math.round(abs / 3600), "h"]
          : [Math.round(abs / 86_400), "d"];
  return seconds <= 0 ? `${value} ${unit} ago` : `in ${value} ${unit}`;
}

/** The states a key can be in, for filtering and badges. */
export type KeyState = "active" | "disabled" | "expiring" | "expired" | "revoked";

/** The key's state now: revoked, expired, disabled, expiring (it has an expiry ahead) or active. */
export function keyState(key: Key, now = Date.now()): KeyState {
  if (key.revokeTime !== undefined) return "revoked";
  if (key.expireTime !== undefined && timestampDate(key.expireTime).getTime() <= now) return "expired";
  if (!key.enabled) return "disabled";
  if (key.expireTime !== undefined) return "expiring";
  return "active";
}

/** Parses `name=value` lines (metadata); blank lines are skipped, a line without `=` is an error. */
export function parseMetadata(text: string): Record<string, string> {
  const entries: Record<string, string> = {};
  for (const [index, raw] of text.split("\n").entries()) {
    const line = raw.trim();
    if (line === "") continue;
    const at = line.indexOf("=");
    if (at <= 0) throw new Error(`metadata line ${index + 1}: write it as name=value`);
    entries[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  return entries;
}

/** Metadata as `name=value` lines, the form {@link parseMetadata} reads. */
export function metadataText(metadata: Record<string, string>): string {
  return Object.entries(metadata)
    .map(([name, value]) => `${name}=${value}`)
    .join("\n");
}

/** Scopes typed with spaces or commas between them. */
export function parseScopes(text: string): string[] {
  return [...new Set(text.split(/[\s,]+/).filter((scope) => scope !== ""))];
}

/** How long Revoke waits for every live verifier to confirm. */
export const REVOKE_WAIT_MS = 2_000;

/** The sentence for a revocation's propagation: "confirmed by 12 of 12 verifiers in 9 ms". */
export function propagationText(propagation: Propagation | undefined): string {
  if (propagation === undefined) return "Revoked.";
  if (propagation.liveVerifiers === 0) return "Revoked. No verifier was live to confirm it.";
  const slowest = propagation.slowest;
  const ms = slowest === undefined ? 0 : Number(slowest.seconds) * 1000 + slowest.nanos / 1e6;
  const sentence = `Revoked: confirmed by ${propagation.confirmed} of ${propagation.liveVerifiers} verifiers in ${Math.round(ms)} ms`;
  return propagation.complete
    ? `${sentence}.`
    : `${sentence}; the others had not answered within ${REVOKE_WAIT_MS / 1000} s.`;
}
