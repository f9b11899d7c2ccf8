import { type FSWatcher, watch } from "node:fs";
import { dirname } from "node:path";
import { loadTlsKeyPair, type TlsKeyPair } from "@latchkey/config";
import type { Logger } from "pino";

/** Options of {@link createCertificateReloader}. */
export interface CertificateReloaderOptions {
  readonly certFile: string;
  readonly keyFile: string;
  /** The pair in use now (read at start). */
  readonly current: TlsKeyPair;
  /** Puts a new pair in use for new handshakes (`server.setSecureContext`). */
  readonly apply: (pair: TlsKeyPair) => void;
  readonly logger: Logger;
  /** Told about every reload that found changed files: applied, or refused and the old pair kept. */
  readonly onReload?: (result: "applied" | "refused", pair: TlsKeyPair) => void;
  /** Quiet time after the last change before the files are read (default 250 ms). */
  readonly debounceMs?: number;
}

/** A watch on a certificate and key pair. */
export interface CertificateReloader {
  /** Reads the files now; applies them when they changed and belong together. */
  reload(): "unchanged" | "applied" | "refused";
  /** Stops watching. */
  close(): void;
}

/**
 * Watches a certificate and its key and puts a new pair in use when the files
 * change, for new handshakes only: connections already open keep theirs. It
 * watches the files' folders, not the files, because cert-manager and the
 * kubelet replace a Secret's files by swapping a symlink (`..data`) and editors
 * replace files by renaming, which a watch on the old file never sees. Writes
 * come in bursts (the certificate, then the key), so it waits `debounceMs` of
 * quiet before reading. A pair that does not load (unreadable, not PEM, a key
 * of another certificate, expired) is refused with an error in the log, and
 * the old pair stays in use; the next change is tried again.
 *
 * @example
 * ```ts
 * const reloader = createCertificateReloader({ certFile, keyFile, current, logger,
 *   apply: (pair) => server.setSecureContext({ cert: pair.cert, key: pair.key }) });
 * ```
 */
export function createCertificateReloader(options: CertificateReloaderOptions): CertificateReloader {
  const { certFile, keyFile, logger } = options;
  const debounceMs = options.debounceMs ?? 250;
  let current = options.current;
  let timer: NodeJS.Timeout | undefined;
  const watchers: FSWatcher[] = [];

  const reload = (): "unchanged" | "applied" | "refused" => {
    const loaded = loadTlsKeyPair(certFile, keyFile);
    if (!loaded.ok) {
      logger.error(
        { file: loaded.file === "cert" ? certFile : keyFile, problem: loaded.problem },
        "TLS certificate not reloaded: the new files are not usable; the previous certificate stays in use",
      );
      options.onReload?.("refused", current);
      return "refused";
    }
    const { pair } = loaded;
    if (pair.cert.equals(current.cert) && pair.key.equals(current.key)) return "unchanged";
    try {
      options.apply(pair);
    } catch (error) {
      logger.error({ err: error }, "TLS certificate not reloaded; the previous certificate stays in use");
      options.onReload?.("refused", current);
      return "refused";
    }
    current = pair;
    logger.info(
      { subject: pair.subject, fingerprint256: pair.fingerprint256, notAfter: pair.notAfter.toISOString() },
      "TLS certificate reloaded",
    );
    options.onReload?.("applied", pair);
    return "applied";
  };

  const schedule = () => {
    if (timer !== undefined) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = undefined;
      reload();
    }, debounceMs);
    timer.unref();
  };

  for (const dir of new Set([dirname(certFile), dirname(keyFile)])) {
    try {
      const watcher = watch(dir, { persistent: false }, schedule);
      watcher.on("error", (error) =>
        logger.warn({ err: error, dir }, "watching the TLS certificate's folder failed"),
      );
      watchers.push(watcher);
    } catch (error) {
      logger.warn({ err: error, dir }, "cannot watch the TLS certificate's folder; it will not be reloaded");
    }
  }

  return {
    reload,
    close() {
      if (timer !== undefined) clearTimeout(timer);
      for (const watcher of watchers) watcher.close();
    },
  };
}
