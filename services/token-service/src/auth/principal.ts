/** The actor recorded for the root key (`created_by`, `disabled_by`, the audit log). */
export const ROOT_ACTOR = "root";

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
