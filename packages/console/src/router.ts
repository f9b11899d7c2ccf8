import { useEffect, useState } from "preact/hooks";

/** A screen of the console. Routes live in the URL's fragment, which never reaches the server. */
export type Route =
  | { readonly name: "teams" }
  | { readonly name: "team"; readonly teamId: string }
  | { readonly name: "key"; readonly keyId: string }
  | { readonly name: "audit"; readonly keyId?: string; readonly teamId?: string }
  | { readonly name: "keychains"; readonly teamId?: string }
  | { readonly name: "not-found"; readonly path: string };

/** Ids as the token-service makes them; anything else in a fragment is not a route. */
const ID = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * Reads a route from `location.hash` (`#/teams/team_…`, `#/keys/key_…`, `#/audit?keyId=…`).
 *
 * @example
 * ```ts
 * parseRoute("#/keys/key_abc"); // { name: "key", keyId: "key_abc" }
 * ```
 */
export function parseRoute(hash: string): Route {
  const [path = "", query = ""] = hash.replace(/^#/, "").split("?", 2);
  const params = new URLSearchParams(query);
  const parts = path.split("/").filter((part) => part !== "");
  const id = parts[1] !== undefined && ID.test(parts[1]) ? parts[1] : undefined;
  const param = (name: string) => {
    const value = params.get(name) ?? "";
    return ID.test(value) ? value : undefined;
  };
  if (parts.length === 0 || (parts[0] === "teams" && parts.length === 1)) return { name: "teams" };
  if (parts[0] === "teams" && id !== undefined && parts.length === 2) return { name: "team", teamId: id };
  if (parts[0] === "keys" && id !== undefined && parts.length === 2) return { name: "key", keyId: id };
  if (parts[0] === "audit" && parts.length === 1) {
    const keyId = param("keyId");
    const teamId = param("teamId");
    return { name: "audit", ...(keyId ? { keyId } : {}), ...(teamId ? { teamId } : {}) };
  }
  if (parts[0] === "keychains" && parts.length === 1) {
    const teamId = param("teamId");
    return { name: "keychains", ...(teamId ? { teamId } : {}) };
  }
  return { name: "not-found", path };
}

/** The fragment link of a route. */
export function href(route: Route): string {
  switch (route.name) {
    case "teams":
      return "#/teams";
    case "team":
      return `#/teams/${route.teamId}`;
    case "key":
      return `#/keys/${route.keyId}`;
    case "audit": {
      const query = new URLSearchParams({
        ...(route.teamId ? { teamId: route.teamId } : {}),
        ...(route.keyId ? { keyId: route.keyId } : {}),
      }).toString();
      return query ? `#/audit?${query}` : "#/audit";
    }
    case "keychains":
      return route.teamId ? `#/keychains?teamId=${route.teamId}` : "#/keychains";
    case "not-found":
      return "#/teams";
  }
}

/** The current route, following the fragment as it changes. */
export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  useEffect(() => {
    const follow = () => setRoute(parseRoute(location.hash));
    addEventListener("hashchange", follow);
    return () => removeEventListener("hashchange", follow);
  }, []);
  return route;
}
