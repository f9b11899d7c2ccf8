import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { decideRelease, type GrantTerms, type RegisteredVersion } from "./release-rules.js";

const sha = (text: string) => createHash("sha256").update(text).digest();
const V1 = sha("v1");
const registered: RegisteredVersion = {
  public: true,
  sha256: V1,
  required: [
    { name: "STRIPE_SECRET_KEY", description: "" },
    { name: "SENDGRID_API_KEY", description: "" },
  ],
};
const grant: GrantTerms = { version: "v1", sha256: V1, names: ["STRIPE_SECRET_KEY", "EXTRA"] };
const presented = { name: "@user/package", version: "v1", sha256: V1 };

describe("decideRelease", () => {
  it("releases the intersection of declared and granted names, and says what it withheld", () => {
    expect(decideRelease(grant, registered, presented)).toEqual({
      ok: true,
      names: ["STRIPE_SECRET_KEY"],
      withheld: [
        { name: "EXTRA", reason: "not_declared" },
        { name: "SENDGRID_API_KEY", reason: "not_granted" },
      ],
    });
  });

  it("releases nothing when the two lists share no name", () => {
    const decision = decideRelease({ ...grant, names: ["EXTRA"] }, registered, presented);
    expect(decision.ok && decision.names).toEqual([]);
  });

  it.each([
    ["no grant", undefined, registered, presented, "not_granted"],
    ["another version", grant, registered, { ...presented, version: "v2" }, "version_mismatch"],
    ["another digest", grant, registered, { ...presented, sha256: sha("v1 changed") }, "digest_mismatch"],
    ["an unregistered version", grant, undefined, presented, "not_registered"],
    [
      "a registry digest that differs",
      grant,
      { ...registered, sha256: sha("other") },
      presented,
      "digest_mismatch",
    ],
    ["a private version", grant, { ...registered, public: false }, presented, "private"],
  ] as const)("refuses %s", (_what, terms, version, package_, reason) => {
    const decision = decideRelease(terms, version, package_);
    expect(decision.ok).toBe(false);
    if (!decision.ok) {
      expect(decision.reason).toBe(reason);
      expect(decision.message.startsWith(`${reason}: `)).toBe(true);
    }
  });
});
