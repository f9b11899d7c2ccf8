/** The actor recorded for the root key (`created_by`, `disabled_by`, the audit log). */
export const ROOT_ACTOR = "root";

/** The actor the audit log records for a refused call whose key is unknown (or that had none). */
export const ANONYMOUS_ACTOR = "anonymous";

/** Who is calling an admin RPC. */
export type Principal =
  | { readonly kind: "root"; readonly actor: typeof ROOT_ACTOR }
  | {
      readonly kind: "admin";
      /** The admin key's id, recorded as the actor. */
      readonly actor: string;
      readonly teamId: string;
      readonly scopes: readonly string[];
    };
