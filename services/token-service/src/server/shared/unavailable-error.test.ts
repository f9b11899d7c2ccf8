import { describe, expect, it } from "vitest";
import { isUnavailableError } from "./unavailable-error.js";

const withCode = (message: string, code: string) => Object.assign(new Error(message), { code });

describe("isUnavailableError", () => {
  it("recognizes refused and dropped connections, also as a cause", () => {
    expect(isUnavailableError(withCode("connect ECONNREFUSED 127.0.0.1:5432", "ECONNREFUSED"))).toBe(true);
    expect(isUnavailableError(new Error("query failed", { cause: withCode("reset", "ECONNRESET") }))).toBe(
      true,
    );
    expect(isUnavailableError(new Error("Connection terminated unexpectedly"))).toBe(true);
    expect(isUnavailableError(new Error("timeout exceeded when trying to connect"))).toBe(true);
  });

  it("recognizes PostgreSQL shutting down or full", () => {
    expect(isUnavailableError(withCode("terminating connection due to administrator command", "57P01"))).toBe(
      true,
    );
    expect(isUnavailableError(withCode("the database system is starting up", "57P03"))).toBe(true);
    expect(isUnavailableError(withCode("sorry, too many clients already", "53300"))).toBe(true);
    expect(isUnavailableError(withCode("connection failure", "08006"))).toBe(true);
  });

  it("leaves bugs and other database errors alone", () => {
    expect(isUnavailableError(new TypeError("x is undefined"))).toBe(false);
    expect(isUnavailableError(withCode("duplicate key value", "23505"))).toBe(false);
    expect(isUnavailableError(withCode("syntax error", "42601"))).toBe(false);
    expect(isUnavailableError("ECONNREFUSED")).toBe(false);
    expect(isUnavailableError(undefined)).toBe(false);
  });
});
