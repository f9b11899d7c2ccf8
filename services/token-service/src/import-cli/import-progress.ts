/** Running totals of an import. */
export interface ImportTotals {
  /** Rows read from the file (bad ones included). */
  rows: number;
  imported: number;
  alreadyImported: number;
  bad: number;
}

/** Options of {@link createImportProgress}. */
export interface ImportProgressOptions {
  /** Where progress goes (stderr). */
  readonly out: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  /** Bytes in the whole input, when known (a file): the bar's 100 %. */
  readonly totalBytes?: number | undefined;
  /** A plain line at most this often when `out` is not a terminal. */
  readonly plainEveryMs?: number;
}

/** Shows how far an import is. */
export interface ImportProgress {
  /** Called after every batch with the totals and the bytes read so far. */
  update(totals: Readonly<ImportTotals>, bytesRead: number): void;
  /** Clears the bar (before other output, and at the end). */
  clear(): void;
}

/**
 * A progress bar redrawn in place on a terminal, or a plain line now and then
 * otherwise (a log, CI), so redirected output stays readable.
 *
 * @example
 * ```ts
 * const progress = createImportProgress({ out: process.stderr, totalBytes: size });
 * progress.update(totals, bytesRead);
 * ```
 */
export function createImportProgress(options: ImportProgressOptions): ImportProgress {
  const { out, totalBytes } = options;
  const tty = out.isTTY === true;
  const plainEveryMs = options.plainEveryMs ?? 5_000;
  const started = performance.now();
  let lastPlain = Number.NEGATIVE_INFINITY;
  let drawn = false;
  const rate = (totals: Readonly<ImportTotals>) => {
    const seconds = (performance.now() - started) / 1000;
    return seconds > 0 ? Math.round((totals.imported + totals.alreadyImported) / seconds) : 0;
  };
  const counts = (totals: Readonly<ImportTotals>) =>
    `${totals.rows} rows: ${totals.imported} imported, ${totals.alreadyImported} already there, ${totals.bad} bad (${rate(totals)} keys/s)`;
  return {
    update(totals, bytesRead) {
      if (tty) {
        const fraction = totalBytes ? Math.min(1, bytesRead / totalBytes) : undefined;
        const width = 24;
        const bar =
          fraction === undefined
            ? ""
            : `[${"#".repeat(Math.round(fraction * width)).padEnd(width, "-")}] ${Math.floor(fraction * 100)}% `;
        const text = `${bar}${counts(totals)}`;
        out.write(`\r${text.slice(0, (out.columns ?? 120) - 1)}\x1b[K`);
        drawn = true;
        return;
      }
      const now = performance.now();
      if (now - lastPlain < plainEveryMs) return;
      lastPlain = now;
      const percent = totalBytes
        ? ` ${Math.floor((Math.min(bytesRead, totalBytes) / totalBytes) * 100)}%`
        : "";
      out.write(`progress:${percent} ${counts(totals)}\n`);
    },
    clear() {
      if (drawn) out.write("\r\x1b[K");
      drawn = false;
    },
  };
}
