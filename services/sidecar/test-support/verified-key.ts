import type { VerifiedKey } from "../src/key-checker.js";

/** A verified key as the verifier hands it over (a `write` key of `team_1`, `prod`), with `fields` changed. */
export function verifiedKey(fields: Partial<VerifiedKey> = {}): VerifiedKey {
  return {
    id: "key_1",
    teamId: "team_1",
    name: "k",
    scopes: ["write"],
    environment: "prod",
    expiresAt: undefined,
    metadata: {},
    ...fields,
  };
}
