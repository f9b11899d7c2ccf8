import { invalidArgument } from "./validate.js";

/** Position after which the next page starts. */
export interface PageCursor {
  readonly createdAt: Date;
  readonly id: string;
}

/** Encodes a cursor as an opaque page token. */
export function encodePageToken(cursor: PageCursor): string {
  return Buffer.from(JSON.stringify([cursor.createdAt.toISOString(), cursor.id])).toString("base64url");
}

/** Decodes a page token from a client; undefined for the first page. */
export function decodePageToken(token: string): PageCursor | undefined {
  if (token === "") return undefined;
  const bad = invalidArgument(
    "page_token",
    "is not a token this server issued; pass next_page_token unchanged",
  );
  if (token.length > 200) throw bad;
  try {
    const value: unknown = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
    if (!Array.isArray(value) || value.length !== 2) throw bad;
    const [at, id] = value as unknown[];
    if (typeof at !== "string" || typeof id !== "string" || id.length > 40) throw bad;
    const createdAt = new Date(at);
    if (Number.isNaN(createdAt.getTime())) throw bad;
    return { createdAt, id };
  } catch {
    throw bad;
  }
}
