import type { GetUsageResponse } from "@latchkey/proto";
import type { JSX } from "preact";
import { OUTCOMES, usageSeries } from "../usage-series.js";

const HEIGHT = 100;

/**
 * Requests per minute by outcome as stacked bars (SVG, no script or style inside: the console's
 * Content-Security-Policy allows neither), with the totals in a table for screen readers and for
 * reading exact numbers. A minute with any request is drawn a few columns wide so a single
 * request stays visible on a 24-hour axis.
 */
export function UsageChart({
  usage,
  startMs,
  minutes,
  idPrefix = "usage",
}: {
  usage: GetUsageResponse;
  startMs: number;
  minutes: number;
  /** Prefix of the test ids, so two charts on a page stay apart. */
  idPrefix?: string;
}) {
  const { columns, totals, peak } = usageSeries(usage, startMs, minutes);
  const total = [...totals.values()].reduce((sum, n) => sum + n, 0);
  const barWidth = Math.max(1, Math.ceil(minutes / 160));
  const bars: JSX.Element[] = [];
  for (const [column, counts] of columns) {
    let y = HEIGHT;
    for (const { outcome, css, name } of OUTCOMES) {
      const count = counts.get(outcome) ?? 0;
      if (count === 0) continue;
      const height = Math.max(1.5, (count / peak) * (HEIGHT - 4));
      y -= height;
      const at = new Date(startMs + column * 60_000).toLocaleTimeString(undefined, { timeStyle: "short" });
      bars.push(
        <rect
          class={`bar bar-${css}`}
          x={Math.min(column, minutes - barWidth)}
          y={y}
          width={barWidth}
          height={height}
          key={`${column}-${css}`}
        >
          <title>{`${at}: ${count} ${name.toLowerCase()}`}</title>
        </rect>,
      );
    }
  }
  const label = `Requests per minute over the last ${minutes / 60} h: ${total} in all, peak ${peak} in one minute`;
  return (
    <figure class="chart" data-testid={`${idPrefix}-chart`}>
      <svg
        class="chart-plot"
        viewBox={`0 0 ${minutes} ${HEIGHT}`}
        preserveAspectRatio="none"
        role="img"
        aria-label={label}
      >
        <line class="chart-axis" x1={0} y1={HEIGHT} x2={minutes} y2={HEIGHT} />
        <line class="chart-grid" x1={0} y1={HEIGHT / 2} x2={minutes} y2={HEIGHT / 2} />
        {bars}
      </svg>
      <div class="chart-axis-labels" aria-hidden="true">
        <span>{minutes / 60} h ago</span>
        <span>peak {peak}/min</span>
        <span>now</span>
      </div>
      <figcaption>
        <table class="legend">
          <caption class="sr-only">Requests by outcome</caption>
          <tbody>
            {OUTCOMES.map(({ outcome, name, css }) => (
              <tr key={css}>
                <th scope="row">
                  <span class={`swatch swatch-${css}`} aria-hidden="true" />
                  {name}
                </th>
                <td data-testid={`${idPrefix}-${css}`}>{totals.get(outcome) ?? 0}</td>
              </tr>
            ))}
            <tr>
              <th scope="row">Total</th>
              <td data-testid={`${idPrefix}-total`}>{total}</td>
            </tr>
          </tbody>
        </table>
      </figcaption>
    </figure>
  );
}
