/** Tables, key-value views and durations for people; `--output json` bypasses all of it. */

const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g;

/** A cell shows API text on one line, and no escape sequence reaches the terminal. */
export function cell(value: unknown): string {
  if (value === undefined || value === null || value === '') return '-';
  return oneLine(typeof value === 'string' ? value : typeof value === 'object' ? JSON.stringify(value) : String(value));
}

/** Text from the API on one line, control characters shown escaped. */
export function oneLine(text: string): string {
  return text.replace(CONTROL, (c) =>
    c === '\n' ? '\\n' : c === '\t' ? ' ' : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`,
  );
}

/** Columns aligned by padding, two spaces apart; the header alone when there are no rows. */
export function table(headers: readonly string[], rows: ReadonlyArray<readonly unknown[]>): string {
  const cells = rows.map((row) => headers.map((_, i) => cell(row[i])));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i].length)));
  const line = (r: readonly string[]) =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(headers), ...cells.map(line)].join('\n');
}

/** `Key:  value` lines, aligned; pairs with an undefined value are left out. */
export function fields(pairs: ReadonlyArray<readonly [string, unknown]>): string {
  const shown = pairs.filter(([, v]) => v !== undefined && v !== null);
  const width = Math.max(0, ...shown.map(([k]) => k.length + 1));
  return shown.map(([k, v]) => `${`${k}:`.padEnd(width)}  ${cell(v)}`).join('\n');
}

/** A job's or template's GPUs in a column: `2`, or `2x4` on four nodes. */
export function gpuCount(of: { gpus?: number; nodeCount?: number }): string | undefined {
  if (of.gpus === undefined) return undefined;
  return (of.nodeCount ?? 1) > 1 ? `${of.gpus}x${of.nodeCount}` : String(of.gpus);
}

/** The same in a key-value view: `2 per node x 4 node(s)`. */
export function gpusPerNode(of: { gpus?: number; nodeCount?: number }): string | undefined {
  return of.gpus === undefined ? undefined : `${of.gpus} per node x ${of.nodeCount ?? 1} node(s)`;
}

/** An environment's variable names, sorted; the values are left to `--output json`. */
export function envNames(env: Record<string, string> | undefined): string | undefined {
  return env && Object.keys(env).length ? Object.keys(env).sort().join(', ') : undefined;
}

/** 45s, 3m12s, 2h05m, 3d04h. */
export function duration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d${String(h % 24).padStart(2, '0')}h`;
}

/** A live timeout in minutes, as people write it: 90 -> 1h30m, 0.5 -> 30s. */
export function minutes(value: number | undefined): string | undefined {
  if (value === undefined) return undefined;
  let s = Math.round(value * 60);
  const parts: string[] = [];
  for (const [unit, size] of [
    ['d', 86_400],
    ['h', 3600],
    ['m', 60],
    ['s', 1],
  ] as const) {
    if (s >= size) parts.push(`${Math.floor(s / size)}${unit}`);
    s %= size;
  }
  return parts.join('') || '0s';
}

/** An ISO time with how long ago (or until) it is. */
export function when(iso: string | undefined, now: Date): string | undefined {
  if (!iso) return undefined;
  const ms = Date.parse(iso) - now.getTime();
  return `${iso} (${ms >= 0 ? `in ${duration(ms)}` : `${duration(-ms)} ago`})`;
}

/** HH:MM:SS of the local clock, for progress lines. */
export function clock(date: Date): string {
  return date.toTimeString().slice(0, 8);
}
