import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  type ResolveSecretsRequest,
  type ResolveSecretsResponseSchema,
  WithheldReason,
  type WithheldSecretSchema,
} from "@latchkey/proto";
import { hashToken, parseTokenWith } from "@latchkey/token";
import { type AuditEntry, recordAudit } from "../audit/audit.repository.js";
import { bearerToken } from "../auth/admin-authenticator.js";
import { keyUsability } from "../keys/key-usability.js";
import type { ServiceDeps } from "../rpc/service-deps.js";
import { rejectUnknownFields } from "../rpc/validate.js";
import type { RpcContext } from "../server/shared/rpc-context.js";
import { openSecret } from "./envelope.js";
import { requireKeyring, withDataKey } from "./keychain-access.js";
import { requirePackageName, requireSha256, requireVersion } from "./keychain-validate.js";
import { decideRelease, hex } from "./release-rules.js";
import { loadResolution } from "./resolution.repository.js";

const NOT_A_KEYCHAIN =
  "the bearer key is not a valid keychain secret (unknown, revoked, disabled or expired)";

/** Decrypted secrets, or the name of the first one that failed authentication. */
type Decrypted =
  | { readonly ok: true; readonly secrets: Record<string, string> }
  | { readonly ok: false; readonly name: string };

/**
 * ResolveSecrets, for the runtime hosting a package: the keychain secret in
 * `Authorization: Bearer`, the package's name, version and digest in the
 * request. One query reads the keychain, its grant for the package and the
 * registry's entry; `decideRelease` applies the three rules; only the names
 * it releases are decrypted. Every outcome is audited before the
 * answer (names, never values): `keychain.resolve`, `keychain.resolve.refused`
 * (with the reason, and the pinned and presented version and digest), or
 * `keychain.resolve.failed` (a secret or data key that failed authentication:
 * DATA_LOSS, nothing returned).
 */
export async function resolveSecrets(
  deps: ServiceDeps,
  request: ResolveSecretsRequest,
  ctx: RpcContext,
): Promise<MessageInitShape<typeof ResolveSecretsResponseSchema>> {
  const keyring = requireKeyring(deps);
  const token = bearerToken(
    ctx.requestHeader,
    "ResolveSecrets needs 'Authorization: Bearer <keychain secret>'",
  );
  rejectUnknownFields(request, "ResolveSecretsRequest");
  const packageName = requirePackageName(request.packageName);
  const version = requireVersion(request.version);
  const sha256 = requireSha256(request.sha256);
  if (!parseTokenWith(deps.formats, token).ok) throw new ConnectError(NOT_A_KEYCHAIN, Code.Unauthenticated);
  const state = await loadResolution(deps.db, hashToken(token), packageName, version);
  if (state === undefined || !keyUsability(state, Date.now()).usable) {
    deps.logger.warn({ package: packageName, version, requestId: ctx.requestId }, "keychain secret refused");
    throw new ConnectError(NOT_A_KEYCHAIN, Code.Unauthenticated);
  }
  const keychainId = state.id;
  const audit = (action: string, details: Record<string, unknown>): AuditEntry => ({
    actor: state.key_id,
    action,
    teamId: state.team_id,
    keyId: state.key_id,
    requestId: ctx.requestId,
    details: { keychainId, package: packageName, version, sha256: hex(sha256), ...details },
  });
  const decision = decideRelease(
    state.grant_version === null || state.grant_sha256 === null
      ? undefined
      : { version: state.grant_version, sha256: state.grant_sha256, names: state.grant_names ?? [] },
    state.version_sha256 === null
      ? undefined
      : {
          public: state.version_public === true,
          sha256: state.version_sha256,
          required: state.version_required ?? [],
        },
    { name: packageName, version, sha256 },
  );
  if (!decision.ok) {
    await recordAudit(
      deps.db,
      audit("keychain.resolve.refused", {
        reason: decision.reason,
        ...(state.grant_version === null
          ? {}
          : { grantVersion: state.grant_version, grantSha256: hex(state.grant_sha256 as Uint8Array) }),
      }),
    );
    deps.logger.warn(
      { keychainId, package: packageName, version, reason: decision.reason, requestId: ctx.requestId },
      "keychain secrets refused to a package",
    );
    throw new ConnectError(decision.message, Code.PermissionDenied);
  }
  const sealed = state.sealed.map((each) => ({
    name: each.name,
    ciphertext: Buffer.from(each.ciphertext, "base64"),
  }));
  const failed = async (reason: string, name?: string) => {
    await recordAudit(deps.db, audit("keychain.resolve.failed", { reason, ...(name ? { name } : {}) }));
    deps.logger.error(
      { keychainId, package: packageName, reason, name, requestId: ctx.requestId },
      "keychain secrets could not be decrypted",
    );
  };
  const decrypted = await withDataKey<Decrypted>(
    keyring,
    state,
    (dataKey) => {
      const secrets: Record<string, string> = {};
      for (const { name, ciphertext } of sealed) {
        const opened = openSecret(dataKey, keychainId, name, ciphertext);
        if (!opened.ok) return { ok: false, name };
        secrets[name] = opened.plaintext.toString("utf8");
        opened.plaintext.fill(0);
      }
      return { ok: true, secrets };
    },
    (failure) => failed(failure),
  );
  if (!decrypted.ok) {
    await failed("authentication", decrypted.name);
    throw new ConnectError(
      `keychain ${keychainId}: secret ${decrypted.name} failed authentication (its stored ciphertext was altered); ` +
        "nothing was released",
      Code.DataLoss,
    );
  }
  const stored = new Set(sealed.map((each) => each.name));
  const withheld: Withheld[] = [
    ...decision.withheld.map((each) => withheldSecret(each.name, each.reason)),
    ...decision.names.filter((name) => !stored.has(name)).map((name) => withheldSecret(name, "not_stored")),
  ];
  const released = Object.keys(decrypted.secrets).sort();
  await recordAudit(
    deps.db,
    audit("keychain.resolve", {
      released,
      withheld: withheld.map((each) => ({ name: each.name, reason: REASON_NAMES[each.reason] })),
    }),
  );
  deps.logger.debug(
    { keychainId, package: packageName, version, released, requestId: ctx.requestId },
    "keychain secrets released",
  );
  return { keychainId, secrets: decrypted.secrets, withheld };
}

const REASONS = {
  not_granted: WithheldReason.NOT_GRANTED,
  not_declared: WithheldReason.NOT_DECLARED,
  not_stored: WithheldReason.NOT_STORED,
} as const;

const REASON_NAMES: Record<WithheldReason, string> = {
  [WithheldReason.UNSPECIFIED]: "unspecified",
  [WithheldReason.NOT_GRANTED]: "not_granted",
  [WithheldReason.NOT_DECLARED]: "not_declared",
  [WithheldReason.NOT_STORED]: "not_stored",
};

type Withheld = MessageInitShape<typeof WithheldSecretSchema> & {
  readonly name: string;
  readonly reason: WithheldReason;
};

function withheldSecret(name: string, reason: keyof typeof REASONS): Withheld {
  return { name, reason: REASONS[reason] };
}
