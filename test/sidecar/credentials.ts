// How the sidecar tests present a credential and read a refusal.
import type { RawResponse } from "../harness/http-client.js";

/** `Authorization: Bearer <token>` */
export const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });

/** `X-API-Key: <token>` (seed 001's header) */
export const apiKey = (token: string): Record<string, string> => ({ "x-api-key": token });

/** The `error` object of a refusal's JSON body. */
export function errorOf(response: RawResponse): { code: string; message: string; requestId?: string } {
  return response.json<{ error: { code: string; message: string; requestId?: string } }>().error;
}
