/** A `host:port` to listen on; port 0 picks a free port. */
export interface ListenOptions {
  readonly host: string;
  readonly port: number;
}

/** PEM-encoded certificate chain and private key. */
export interface TlsOptions {
  readonly cert: string | Buffer;
  readonly key: string | Buffer;
}

/** The largest request message either listener accepts unless told otherwise: 64 KiB. */
export const DEFAULT_MAX_RECEIVE_MESSAGE_BYTES = 64 * 1024;

/** A listening server. */
export interface RunningServer {
  /** The bound port (the real one when asked for port 0). */
  readonly port: number;
  /**
   * Stops accepting calls, lets in-flight calls finish for up to `timeoutMs`,
   * then cancels what is left and closes every connection. Resolves when the
   * server is closed; never rejects.
   */
  close(timeoutMs: number): Promise<void>;
}
