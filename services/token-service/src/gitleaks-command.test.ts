import { readFileSync } from "node:fs";
import { ConfigError } from "@latchkey/config";
import { createKeyFormats, generateTokenWith } from "@latchkey/token";
import { describe, expect, it } from "vitest";
import { gitleaksRulesCommand } from "./gitleaks-command.js";

const FORMATS_FILE = new URL("../../../deploy/gitleaks/seed-key-formats.json", import.meta.url).pathname;
const RULES_FILE = new URL("../../../deploy/gitleaks/latchkey-seed-formats.gitleaks.toml", import.meta.url)
  .pathname;

/** Each rule's id and regex, read back from the TOML. */
function rulesOf(toml: string): Array<{ id: string; regex: RegExp }> {
  return [...toml.matchAll(/^id = "([^"]+)"\n[^\n]*\nregex = '''(.+)'''$/gm)].map((match) => ({
    id: match[1] ?? "",
    regex: new RegExp(match[2] ?? ""),
  }));
}

describe("gitleaks-rules", () => {
  it("the committed example is what the generator writes for the seed formats", () => {
    // Regenerate with: npm run gitleaks-rules -- deploy/gitleaks/seed-key-formats.json > deploy/gitleaks/latchkey-seed-formats.gitleaks.toml
    expect(readFileSync(RULES_FILE, "utf8")).toBe(gitleaksRulesCommand(FORMATS_FILE));
  });

  it("each rule matches a key of its format and not a near miss", () => {
    const formats = createKeyFormats({
      formats: JSON.parse(readFileSync(FORMATS_FILE, "utf8")),
      signingKeys: [{ kid: "k1", secret: Buffer.alloc(32, 3).toString("base64url"), active: true }],
    });
    const rules = rulesOf(readFileSync(RULES_FILE, "utf8"));
    expect(rules.map((rule) => rule.id)).toEqual(formats.formats.map((format) => `latchkey-${format.name}`));
    for (const [i, format] of formats.formats.entries()) {
      const rule = rules[i];
      if (!rule) throw new Error("rule missing");
      const token = generateTokenWith(formats, format.name, {
        environment: "live",
        claims: { keyId: "key_abc", teamId: "team_abc", scopes: ["read"] },
      });
      const captured = rule.regex.exec(`export API_KEY="${token}"`);
      expect(captured?.[1], format.name).toBe(token);
      expect(rule.regex.test(`${token}.`), `${format.name} before a full stop`).toBe(true);
      // Near misses: one character short, inside a longer word, the prefix in upper case.
      const short = token.slice(
        0,
        format.kind === "base64url" ? format.literal.length + format.minBody - 1 : -1,
      );
      expect(rule.regex.test(` ${short} `), `${format.name} short`).toBe(false);
      expect(rule.regex.test(` x${token} `), `${format.name} inside a word`).toBe(false);
      expect(rule.regex.test(` ${token.replace(format.literal, format.literal.toUpperCase())} `)).toBe(false);
    }
  });

  it("a bad format file is refused with its name and the entry at fault", () => {
    expect(() => gitleaksRulesCommand("/nonexistent/formats.json")).toThrow(ConfigError);
    const env = { LATCHKEY_KEY_FORMATS: '[{"name":"x","kind":"hex","prefix":"x"}]' };
    expect(() => gitleaksRulesCommand(undefined, env)).toThrow(/LATCHKEY_KEY_FORMATS: \[0\]\.prefix/);
  });

  it("without a file, writes the deployment's formats", () => {
    const env = { LATCHKEY_KEY_FORMATS: '[{"name":"oag","kind":"hex","prefix":"oag_"}]' };
    expect(gitleaksRulesCommand(undefined, env)).toContain("(oag_[0-9a-f]{32})");
  });
});
