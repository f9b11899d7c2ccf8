import { Code, ConnectError } from "@connectrpc/connect";
import { type Api, createApi } from "./api.js";

/** The sessionStorage entry holding the admin key for this tab (gone when the tab closes). */
export const SESSION_KEY_ITEM = "latchkey.console.adminKey";

/** Who the signed-in key is: the root key, or a team's admin key. */
export type Identity = { readonly kind: "root" } | { readonly kind: "team-admin"; readonly teamId: string };

/** A signed-in session: the clients (holding the key) and what the key is. */
export interface Session {
  readonly api: Api;
  readonly identity: Identity;
}

/** What signing in gives: a session, or a message to show beside the key field. */
export type SignInOutcome = { ok: true; session: Session } | { ok: false; message: string };

/**
 * Checks `adminKey` by calling RPCs with it (the server decides; the console widens nothing):
 * ListTeams answers only the root key; a team admin key lists its own team's keys, which names its
 * team. The key is kept in sessionStorage only when it works, never in localStorage, a cookie or a URL.
 *
 * @example
 * ```ts
 * const outcome = await signIn(form.key.value);
 * if (!outcome.ok) showError(outcome.message);
 * ```
 */
export async function signIn(adminKey: string, remember = true): Promise<SignInOutcome> {
  const key = adminKey.trim();
  if (key === "")
    return { ok: false, message: "Paste an admin key (the root key, or a key with the admin scope)." };
  const api = createApi(key);
  try {
    await api.teams.listTeams({ pageSize: 1 });
    return accepted(api, { kind: "root" }, key, remember);
  } catch (error) {
    const code = codeOf(error);
    if (code === Code.Unauthenticated) return { ok: false, message: refusal(error) };
    if (code !== Code.PermissionDenied) return { ok: false, message: unreachable(error) };
  }
  try {
    const { keys } = await api.tokens.list({ pageSize: 1 });
    const teamId = keys[0]?.teamId ?? "";
    return accepted(api, { kind: "team-admin", teamId }, key, remember);
  } catch (error) {
    const code = codeOf(error);
    if (code === Code.PermissionDenied) {
      return {
        ok: false,
        message:
          "This key is valid but is not an admin key: the console needs the root key or a key with the admin scope.",
      };
    }
    if (code === Code.Unauthenticated) return { ok: false, message: refusal(error) };
    return { ok: false, message: unreachable(error) };
  }
}

/** The key kept from an earlier sign-in in this tab, if any. */
export function storedKey(): string | undefined {
  return sessionStorage.getItem(SESSION_KEY_ITEM) ?? undefined;
}

/** Forgets the key: signing out, or the server refusing it. */
export function forgetKey(): void {
  sessionStorage.removeItem(SESSION_KEY_ITEM);
}

function accepted(api: Api, identity: Identity, key: string, remember: boolean): SignInOutcome {
  if (remember) sessionStorage.setItem(SESSION_KEY_ITEM, key);
  return { ok: true, session: { api, identity } };
}

function codeOf(error: unknown): Code {
  return ConnectError.from(error).code;
}

function refusal(error: unknown): string {
  return (
    "This key was not accepted: it is not a key of this deployment, or it is revoked, disabled or expired. " +
    `(The token-service said: ${ConnectError.from(error).rawMessage})`
  );
}

function unreachable(error: unknown): string {
  return `The token-service did not answer the sign-in check: ${ConnectError.from(error).rawMessage}. Try again.`;
}
