import { isIP, isIPv6 } from "node:net";

/**
 * The address a public route's per-client limits count: the TCP peer, unless
 * the peer is a trusted proxy (`LATCHKEY_TRUSTED_PROXIES`), in which case the
 * `X-Forwarded-For` chain is walked from the right past trusted proxies to
 * the first address none of them vouches for. A client that sends its own
 * `X-Forwarded-For` to an untrusted sidecar, or prepends entries behind a
 * trusted one, cannot choose the address it is counted as. IPv6 addresses
 * count per /64, the block one host usually holds.
 *
 * @example
 * ```ts
 * clientAddress("127.0.0.1", "203.0.113.9", () => true); // "203.0.113.9"
 * ```
 */
export function clientAddress(
  peer: string,
  forwardedFor: string | undefined,
  isTrusted: (address: string) => boolean,
): string {
  if (forwardedFor === undefined || !isTrusted(peer)) return addressKey(peer);
  const hops = forwardedFor.split(",");
  for (let i = hops.length - 1; i >= 0; i -= 1) {
    const hop = (hops[i] as string).trim();
    if (hop === "") continue;
    // Not an address (a proxy passing junk on): counted as itself, never as the proxy.
    if (isIP(hop) === 0 || !isTrusted(hop)) return addressKey(hop);
  }
  return addressKey(peer);
}

/** The counted form of an address: IPv4 as is (also when mapped into IPv6), IPv6 as its /64. */
export function addressKey(address: string): string {
  if (address.startsWith("::ffff:") && address.includes(".")) return address.slice(7);
  if (!isIPv6(address)) return address.length > 64 ? address.slice(0, 64) : address;
  const [head = "", tail = ""] = address.split("::");
  const left = head === "" ? [] : head.split(":");
  const right = tail === "" ? [] : tail.split(":");
  const groups = address.includes("::")
    ? [...left, ...Array(Math.max(0, 8 - left.length - right.length)).fill("0"), ...right]
    : left;
  return `${groups
    .slice(0, 4)
    .map((group) => group.toLowerCase().replace(/^0+(?=.)/, ""))
    .join(":")}::/64`;
}
