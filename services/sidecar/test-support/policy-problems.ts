import { expect } from "vitest";
import { compilePolicy, PolicyError } from "../src/policy/policy.js";

/** The problems a policy document is refused for; fails the test when it compiles. */
export function policyProblems(document: unknown, env: NodeJS.ProcessEnv = {}): readonly string[] {
  try {
    compilePolicy(document, { env });
  } catch (error) {
    expect(error).toBeInstanceOf(PolicyError);
    return (error as PolicyError).problems;
  }
  throw new Error("expected a PolicyError");
}
