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

/** Ids as this server makes them (`key_…`, `team_…`, `kc_…`): letters, digits and `_`. */
const CURSOR_ID = /^[A-Za-z0-9_]{1,40}$/;
/**
 * A protobuf Timestamp's range (years 1 to 9999), which holds every row's time (an imported key may
 * predate 1970); a cursor outside it is forged.
 */
const EARLIEST_CURSOR_MS = -62_135_596_800_000;
const LATEST_CURSOR_MS = 253_402_300_799_999;

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
    if (typeof at !== "string" || typeof id !== "string" || !CURSOR_ID.test(id)) throw bad;
    const createdAt = new Date(at);
    // PostgreSQL refuses a NUL in text and a time outside its range with an error: such a
    // cursor would be an INTERNAL error, not the client's INVALID_ARGUMENT.
    const ms = createdAt.getTime();
    if (Number.isNaN(ms) || ms < EARLIEST_CURSOR_MS || ms > LATEST_CURSOR_MS) throw bad;
    return { createdAt, id };
  } catch {
    throw bad;
  }
}

/**
 * One page of rows read with `limit + 1` (the extra row only says that more
 * follow) and the token of the next page: empty on the last one.
 *
 * @example
 * ```ts
 * const rows = await listTeams(db, { limit, after: decodePageToken(request.pageToken) });
 * const { page, nextPageToken } = pageOf(rows, limit);
 * ```
 */
export function pageOf<T extends { readonly created_at: Date; readonly id: string }>(
  rows: readonly T[],
  limit: number,
): { page: T[]; nextPageToken: string } {
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  return {
    page,
    nextPageToken:
      rows.length > limit && last ? encodePageToken({ createdAt: last.created_at, id: last.id }) : "",
  };
}

const SEQUENCE_TOKEN = /^s([1-9][0-9]{0,18})$/;

/**
 * A page token for listings ordered by a growing id (the audit log): the last
 * id of the page, base64url-encoded so clients treat it as opaque.
 */
export function encodeSequencePageToken(lastId: string): string {
  return Buffer.from(`s${lastId}`).toString("base64url");
}

/** Decodes {@link encodeSequencePageToken}'s token; undefined for the first page. */
export function decodeSequencePageToken(token: string): bigint | undefined {
  if (token === "") return undefined;
  const match =
    token.length <= 40 ? SEQUENCE_TOKEN.exec(Buffer.from(token, "base64url").toString("latin1")) : null;
  const id = match?.[1] === undefined ? undefined : BigInt(match[1]);
  if (id === undefined || id > 9_223_372_036_854_775_807n) {
    throw invalidArgument("page_token", "is not a token this server issued; pass next_page_token unchanged");
  }
  return id;
}
