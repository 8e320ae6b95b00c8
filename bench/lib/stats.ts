/** Pure arithmetic on samples: percentiles, summaries, rates. No clocks, no I/O. */

/** Median and spread of a set of samples (milliseconds unless the name says otherwise). */
export interface Summary {
  n: number;
  min: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

/**
 * The p-th percentile (0..100) with linear interpolation between the closest
 * ranks, the same definition as the Slurm peer's bench.py, so both sides are
 * summarised alike. NaN for no samples.
 */
export function percentile(samples: readonly number[], p: number): number {
  if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile must be within 0..100, got ${p}`);
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = ((sorted.length - 1) * p) / 100;
  const low = Math.floor(rank);
  const high = Math.min(low + 1, sorted.length - 1);
  return sorted[low] + (sorted[high] - sorted[low]) * (rank - low);
}

export function summarize(samples: readonly number[]): Summary {
  const finite = samples.filter((x) => Number.isFinite(x));
  if (finite.length === 0)
    return {
      n: 0,
      min: Number.NaN,
      p50: Number.NaN,
      p90: Number.NaN,
      p99: Number.NaN,
      max: Number.NaN,
      mean: Number.NaN,
    };
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  for (const x of finite) {
    if (x < min) min = x;
    if (x > max) max = x;
    sum += x;
  }
  return {
    n: finite.length,
    min,
    p50: percentile(finite, 50),
    p90: percentile(finite, 90),
    p99: percentile(finite, 99),
    max,
    mean: sum / finite.length,
  };
}

/** Events per second over a window in milliseconds; NaN for an empty or backwards window. */
export function ratePerSecond(count: number, windowMs: number): number {
  return windowMs > 0 ? count / (windowMs / 1000) : Number.NaN;
}

/** a / b, NaN when either is not a finite number or b is 0. */
export function ratio(a: number | undefined, b: number | undefined): number {
  if (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) return Number.NaN;
  return a / b;
}

/** Round for display and JSON: 3 significant digits below 100, whole numbers above. */
export function round(x: number): number {
  if (!Number.isFinite(x)) return x;
  const abs = Math.abs(x);
  if (abs >= 100) return Math.round(x);
  if (abs === 0) return 0;
  const digits = Math.max(0, 2 - Math.floor(Math.log10(abs)));
  const f = 10 ** Math.min(digits, 9);
  return Math.round(x * f) / f;
}

/** A submit figure run again: the first run's details, with completed/s the median of every run's. */
export function withRepeats<T extends { completedPerS: number }>(
  first: T,
  rates: readonly number[],
): T & { completedPerSRuns: number[] } {
  return { ...first, completedPerS: summarize(rates).p50, completedPerSRuns: [...rates] };
}
