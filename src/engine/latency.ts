/**
 * A fixed-bucket latency histogram updated inline on the data path (an array
 * increment, no allocation); the metrics endpoint reads it when scraped.
 */

/**
 * Upper bounds in seconds, Prometheus style (cumulative on export). Up to 30 s:
 * hung storage is when the histogram matters most, and the Linux initiator keeps
 * retrying for aoe_deadsecs (default 180 s) before it fails the device.
 */
export const LATENCY_BUCKETS = [
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 2.5, 5,
  10, 30,
] as const;

export class LatencyHistogram {
  /** counts[i]: observations in (bound[i-1], bound[i]]; the last slot is +Inf. */
  readonly counts = new Float64Array(LATENCY_BUCKETS.length + 1);
  sum = 0;
  count = 0;

  observe(seconds: number): void {
    let i = 0;
    while (i < LATENCY_BUCKETS.length && seconds > LATENCY_BUCKETS[i]!) i++;
    this.counts[i]!++;
    this.sum += seconds;
    this.count++;
  }

  reset(): void {
    this.counts.fill(0);
    this.sum = 0;
    this.count = 0;
  }
}
