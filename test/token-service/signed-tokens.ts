// Signed `oai_` tokens as the tests make and tamper with them: Latchkey's own read and altered, and
// tokens an earlier system signed with its own claims (seed 001), genuine or forged.
import { createHmac } from "node:crypto";

const PREFIX = "oai_";

/** The claims in a signed token's payload, parsed (no signature check). */
export function claimsOf(token: string): Record<string, unknown> {
  const payload = token.slice(PREFIX.length).split(".")[0] ?? "";
  return JSON.parse(Buffer.from(payload, "base64url").toString());
}

/**
 * The same token with its payload changed and its signature kept: what a forger who cannot sign does.
 *
 * @example
 * ```ts
 * const widened = withClaims(token, (claims) => ({ ...claims, scopes: ["admin"] }));
 * ```
 */
export function withClaims(token: string, change: (claims: Record<string, unknown>) => object): string {
  const signature = token.slice(token.lastIndexOf(".") + 1);
  return `${PREFIX}${Buffer.from(JSON.stringify(change(claimsOf(token)))).toString("base64url")}.${signature}`;
}

/** A token as an earlier system signed it: its own claims, base64url, a ".", HMAC-SHA256 of that payload. */
export function legacySignedToken(claims: object, secret: Buffer): string {
  const payload = Buffer.from(JSON.stringify(claims)).toString("base64url");
  return `${PREFIX}${payload}.${createHmac("sha256", secret).update(payload).digest("base64url")}`;
}
