// The reproduction of Traefik's path handling (traefik-url.ts) against Traefik's own test tables:
// TestSanitizePath and TestNormalizePath in traefik/traefik pkg/server/server_entrypoint_tcp_test.go.
import { describe, expect, it } from "vitest";
import { goSetPath, traefikNormalize, traefikRequestUri, traefikSanitize } from "./traefik-url.js";

describe("Traefik's entry-point path handling, as reproduced", () => {
  it.each([
    ["/b", "/b"],
    ["/b/", "/b/"],
    ["/../../b/", "/b/"],
    ["/../../b", "/b"],
    ["/a/b/..", "/a"],
    ["/a/b/../", "/a/"],
    ["/a/../../b", "/b"],
    ["/..///b///", "/b/"],
    ["/a/../b", "/b"],
    ["/a/./b", "/a/b"],
    ["/a//b", "/a/b"],
    ["/a/../c/../b", "/b"],
    ["/a/../../../c/../b", "/b"],
    ["/a/../c/../../b", "/b"],
    ["/a/..//c/.././b", "/b"],
  ])("sanitizePath %s → %s (TestSanitizePath)", (path, expected) => {
    const parsed = goSetPath(path);
    expect(parsed && traefikSanitize(parsed)?.path).toBe(expected);
  });

  it("normalizePath decodes unreserved escapes and upper-cases the others (TestNormalizePath)", () => {
    const unreserved = [..."ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"].map(
      (char) => `%${char.charCodeAt(0).toString(16).toUpperCase()}`,
    );
    const reserved = "%3A%2F%3F%23%5B%5D%40%21%24%26%27%28%29%2A%2B%2C%3B%3D%25";
    const parsed = goSetPath(`/${unreserved.join("")}${reserved}%0a`);
    expect(parsed && traefikNormalize(parsed)?.rawPath).toBe(
      `/ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~${reserved}%0A`,
    );
  });

  it("refuses malformed escapes, and passes what it does not change", () => {
    expect(traefikRequestUri("/%")).toBeUndefined();
    expect(traefikRequestUri("/%f")).toBeUndefined();
    expect(traefikRequestUri("/%20")).toBe("/%20");
    expect(traefikRequestUri("/docs/%2e%2e//admin/./users?x=%2e")).toBe("/admin/users?x=%2e");
    expect(traefikRequestUri("/a%2Fb")).toBe("/a%2Fb");
  });
});
