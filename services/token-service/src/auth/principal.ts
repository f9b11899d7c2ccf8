/** Who is calling an admin RPC. */
export type Principal =
  | { readonly kind: "root"; readonly actor: "root" }
  | {
      readonly kind: "admin";
      /** The admin key's id, recorded as the actor. */
      readonly actor: string;
      readonly teamId: string;
      readonly scopes: readonly string[];
    };
