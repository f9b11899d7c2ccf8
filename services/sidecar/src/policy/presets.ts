import type { AccessInput, PolicyRuleInput, PresetName } from "./policy-schema.js";

/** What a preset adds to a policy: rules tried after the file's own, and a default. */
export interface Preset {
  readonly rules: readonly PolicyRuleInput[];
  readonly default: AccessInput;
}

/**
 * The two Opengram modes. `reads-public`: GET, HEAD and OPTIONS are public and
 * everything else needs a key with `write`. `all-private`: everything needs a
 * key with at least `read`. A file's own rules come first, so a rule can still
 * override a preset (an SSE stream that always needs the instance secret).
 */
export const PRESETS: Readonly<Record<PresetName, Preset>> = {
  "reads-public": {
    rules: [
      {
        name: "reads-public: reads",
        methods: ["GET", "HEAD", "OPTIONS"],
        paths: ["/**"],
        kind: "public",
        passCredential: false,
        passMethodOverride: false,
        keepQueryToken: false,
      },
    ],
    default: {
      kind: "key",
      scopes: ["write"],
      allowQueryToken: false,
      passCredential: false,
      passMethodOverride: false,
      keychains: false,
    },
  },
  "all-private": {
    rules: [],
    default: {
      kind: "key",
      scopes: ["read"],
      allowQueryToken: false,
      passCredential: false,
      passMethodOverride: false,
      keychains: false,
    },
  },
};
