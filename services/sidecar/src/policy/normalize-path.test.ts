import { describe, expect, it } from "vitest";
import { normalizePath } from "./normalize-path.js";

describe("normalizePath", () => {
  it("passes plain paths through unchanged", () => {
    expect(normalizePath("/")).toEqual({ ok: true, path: "/", matchPath: "/" });
    expect(normalizePath("/api/v1/chats")).toEqual({
      ok: true,
      path: "/api/v1/chats",
      matchPath: "/api/v1/chats",
    });
    expect(normalizePath("/api/")).toEqual({ ok: true, path: "/api/", matchPath: "/api" });
    expect(normalizePath("/a.b/c~d")).toEqual({ ok: true, path: "/a.b/c~d", matchPath: "/a.b/c~d" });
  });

  it("resolves dot segments and duplicate slashes once", () => {
    expect(normalizePath("/a/./b/../c")).toEqual({ ok: true, path: "/a/c", matchPath: "/a/c" });
    expect(normalizePath("/../../etc/passwd")).toEqual({
      ok: true,
      path: "/etc/passwd",
      matchPath: "/etc/passwd",
    });
    expect(normalizePath("//a///b//")).toEqual({ ok: true, path: "/a/b/", matchPath: "/a/b" });
    expect(normalizePath("/a/..")).toEqual({ ok: true, path: "/", matchPath: "/" });
    expect(normalizePath("/.well-known/x")).toEqual({
      ok: true,
      path: "/.well-known/x",
      matchPath: "/.well-known/x",
    });
  });

  it("decodes percent-encoding once and forwards a canonical encoding", () => {
    expect(normalizePath("/%61%64min")).toEqual({ ok: true, path: "/admin", matchPath: "/admin" });
    expect(normalizePath("/a/%2e%2E/b")).toEqual({ ok: true, path: "/b", matchPath: "/b" });
    expect(normalizePath("/caf%C3%A9/a%20b")).toEqual({
      ok: true,
      path: "/caf%C3%A9/a%20b",
      matchPath: "/café/a b",
    });
    expect(normalizePath("/a%3Fb")).toEqual({ ok: true, path: "/a%3Fb", matchPath: "/a?b" });
  });

  it("drops path parameters for matching and treats `..;` as a dot segment", () => {
    expect(normalizePath("/admin;jsessionid=1/x")).toEqual({
      ok: true,
      path: "/admin;jsessionid=1/x",
      matchPath: "/admin/x",
    });
    expect(normalizePath("/public/..;/admin")).toEqual({ ok: true, path: "/admin", matchPath: "/admin" });
    expect(normalizePath("/public/.;x/admin")).toEqual({
      ok: true,
      path: "/public/admin",
      matchPath: "/public/admin",
    });
  });

  it("refuses what two HTTP stacks would read differently", () => {
    const reason = (path: string) => {
      const outcome = normalizePath(path);
      return outcome.ok ? "ok" : outcome.reason;
    };
    expect(reason("http://evil/x")).toBe("not_origin_form");
    expect(reason("*")).toBe("not_origin_form");
    expect(reason("/a%2fb")).toBe("encoded_separator");
    expect(reason("/a%5cb")).toBe("encoded_separator");
    expect(reason("/a\\b")).toBe("backslash");
    expect(reason("/a%00b")).toBe("nul");
    expect(reason("/a%0Ab")).toBe("control_character");
    expect(reason("/a%7Fb")).toBe("control_character");
    expect(reason("/a%zzb")).toBe("invalid_percent_encoding");
    expect(reason("/a%4")).toBe("invalid_percent_encoding");
    expect(reason("/a%C3")).toBe("invalid_utf8");
    expect(reason("/a%FF%FE")).toBe("invalid_utf8");
    expect(reason("/a%ED%A0%80")).toBe("invalid_utf8");
    expect(reason("/a%252e%252e/b")).toBe("double_encoding");
    expect(reason("/a%2541")).toBe("double_encoding");
    expect(reason("/café")).toBe("non_ascii");
    expect(reason("/a\tb")).toBe("control_character");
  });
});
