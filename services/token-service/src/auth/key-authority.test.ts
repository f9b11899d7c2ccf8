import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { keyRow } from "../../test-support/key-row.js";
import type { ApiKeyRow } from "../db/tables.js";
import { authorizeKeyWrite, type KeyWrite } from "./key-authority.js";
import type { Principal } from "./principal.js";

const admin: Principal = { kind: "admin", actor: "key_admin", teamId: "team_a", scopes: ["admin"] };
const root: Principal = { kind: "root", actor: "root" };

function row(fields: Partial<ApiKeyRow> = {}): ApiKeyRow {
  return keyRow({
    id: "key_target",
    team_id: "team_a",
    name: "target",
    scopes: ["admin", "billing:refund"],
    hint: "lk_live_…abcd",
    metadata: { owner: "ops" },
    ...fields,
  });
}

/** The refusal message, or "allowed". */
function decide(principal: Principal, write: KeyWrite): string {
  try {
    authorizeKeyWrite(principal, write);
    return "allowed";
  } catch (error) {
    expect(error).toBeInstanceOf(ConnectError);
    expect((error as ConnectError).code).toBe(Code.PermissionDenied);
    return (error as ConnectError).rawMessage;
  }
}

describe("authorizeKeyWrite", () => {
  it("lets the root key make any write", () => {
    const disabledByRoot = row({ enabled: false, disabled_by: "root" });
    expect(decide(root, { kind: "issue", scopes: ["billing:refund"] })).toBe("allowed");
    expect(decide(root, { kind: "import", scopes: ["billing:refund"] })).toBe("allowed");
    expect(decide(root, { kind: "rotate", key: row() })).toBe("allowed");
    expect(decide(root, { kind: "update", key: disabledByRoot, changes: { enabled: true } })).toBe("allowed");
  });

  it("lets an admin key reduce a stronger key: revoke, disable, remove scopes", () => {
    expect(decide(admin, { kind: "revoke", key: row() })).toBe("allowed");
    expect(decide(admin, { kind: "update", key: row(), changes: { enabled: false } })).toBe("allowed");
    const trim = { scopes: ["write", "billing:refund"] };
    expect(decide(admin, { kind: "update", key: row(), changes: trim })).toBe("allowed");
  });

  it("treats fields set to their current value as no change", () => {
    const same = { name: "target", metadata: { owner: "ops" }, enabled: true, scopes: ["billing:refund"] };
    expect(decide(admin, { kind: "update", key: row(), changes: same })).toBe("allowed");
    const owned = row({ owner: "agent-7" });
    expect(decide(admin, { kind: "update", key: owned, changes: { owner: "agent-7" } })).toBe("allowed");
  });

  it("refuses anything that gives a stronger key power or a token, naming the field and the scopes", () => {
    const disabled = row({ enabled: false, disabled_by: "key_other_admin" });
    const cases: Array<[KeyWrite, string]> = [
      [{ kind: "issue", scopes: ["read", "billing:refund"] }, "scopes"],
      [{ kind: "import", scopes: ["read", "billing:refund"] }, "scopes"],
      [{ kind: "rotate", key: row() }, "key_id"],
      [{ kind: "rotate", key: disabled }, "key_id"],
      [{ kind: "update", key: disabled, changes: { enabled: true } }, "enabled"],
      [{ kind: "update", key: row(), changes: { name: "renamed" } }, "name"],
      [{ kind: "update", key: row(), changes: { metadata: { owner: "me" } } }, "metadata.entries"],
      [{ kind: "update", key: row(), changes: { owner: "agent-7" } }, "owner"],
      [{ kind: "update", key: row({ owner: "agent-7" }), changes: { owner: null } }, "owner"],
      [
        { kind: "update", key: row({ scopes: ["read"] }), changes: { scopes: ["billing:refund"] } },
        "scopes.values",
      ],
    ];
    for (const [write, field] of cases) {
      expect(decide(admin, write)).toMatch(new RegExp(`^${field.replace(".", "\\.")}: .*: billing:refund$`));
    }
  });

  it("judges a combined update by the scopes the key ends with", () => {
    const disabled = row({ enabled: false, disabled_by: "key_admin" });
    expect(
      decide(admin, { kind: "update", key: disabled, changes: { enabled: true, scopes: ["read"] } }),
    ).toBe("allowed");
  });

  it("keeps re-enabling a key the root key disabled for the root key, whatever its scopes", () => {
    const key = row({ scopes: ["read"], enabled: false, disabled_by: "root" });
    expect(decide(admin, { kind: "update", key, changes: { enabled: true } })).toMatch(
      /^enabled: .*only the root key can re-enable it$/,
    );
    expect(decide(admin, { kind: "update", key, changes: { name: "still-off" } })).toBe("allowed");
  });
});
