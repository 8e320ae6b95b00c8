/**
 * The zod building blocks of lib/settings.ts: context values as people write
 * them (`-c key=5` is the string '5', lists come as arrays, JSON or `a,b`), and
 * the one translation of a zod issue into InvalidSetting, `context <key>: <reason>`.
 */
import { z } from 'zod';

/** Thrown for a bad or missing setting; the message starts with the key. */
export class InvalidSetting extends Error {
  constructor(
    readonly key: string,
    reason: string,
  ) {
    super(`context ${key}: ${reason}`);
    this.name = 'InvalidSetting';
  }
}

/** Parses the context with one group's schema; its first issue becomes the error, named by its path. */
export function parseContext<T extends z.ZodType>(schema: T, context: Record<string, unknown>): z.output<T> {
  const result = schema.safeParse(context);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const path = issue.code === 'unrecognized_keys' ? [...issue.path, issue.keys[0]] : issue.path;
  const key = path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`)).join('');
  throw new InvalidSetting(key, issue.message);
}

export function show(v: unknown): string {
  return v === undefined ? 'nothing' : JSON.stringify(v);
}

type Reason = (got: string) => string;

/** A string that matches `valid`; anything else, missing included, fails with `reason`. */
export function text(valid: RegExp | ((s: string) => boolean), reason: Reason) {
  const error = (issue: { input?: unknown }) => reason(show(issue.input));
  return z.string({ error }).refine((s) => (typeof valid === 'function' ? valid(s) : valid.test(s)), { error });
}

/** An integer of at least `min`, given as a JSON number. */
export function count(min: number, reason: Reason) {
  const error = (issue: { input?: unknown }) => reason(show(issue.input));
  return z.number({ error }).int({ error }).min(min, { error });
}

/** An integer from `min` to `max`; `-c key=5` gives the string '5', which is read as 5. */
export function wholeNumber(min: number, max: number, reason: Reason) {
  const digits = (v: unknown) => (typeof v === 'string' && /^\d+$/.test(v.trim()) ? Number(v.trim()) : v);
  const error = (issue: { input?: unknown }) => reason(show(issue.input));
  return z.preprocess(digits, count(min, reason).max(max, { error }));
}

/** A value that may also come as JSON text (what `-c key='[…]'` gives). */
export function fromJson<T extends z.ZodType>(schema: T) {
  return z.preprocess((v, ctx) => (typeof v === 'string' ? parseJson(v, ctx) : v), schema);
}

/** A list: an array, a JSON array, or comma-separated text (what `-c key=a,b` gives). */
export function list<T extends z.ZodType<string>>(item: T) {
  const split = (v: unknown, ctx: z.RefinementCtx) => {
    if (typeof v !== 'string') return v;
    return v.trim().startsWith('[')
      ? parseJson(v, ctx)
      : v
          .split(',')
          .map((s) => s.trim())
          .filter((s) => s.length > 0);
  };
  return z.preprocess(split, z.array(item, { error: 'must be a list of strings (an array or comma-separated)' }));
}

function parseJson(raw: string, ctx: z.RefinementCtx): unknown {
  try {
    return JSON.parse(raw);
  } catch (cause) {
    ctx.addIssue({ code: 'custom', message: `is not valid JSON (${(cause as Error).message})` });
    return z.NEVER;
  }
}

export function unique(values: readonly unknown[]): boolean {
  return new Set(values).size === values.length;
}

/** Fails on the second item whose `keyOf` repeats an earlier one's, at that item's `field`. */
export function uniqueBy<T>(keyOf: (item: T) => string, field: string, message: (key: string) => string) {
  return (items: T[], ctx: z.RefinementCtx) => {
    const seen = new Set<string>();
    items.forEach((item, i) => {
      const key = keyOf(item);
      if (seen.has(key)) ctx.addIssue({ code: 'custom', path: [i, field], message: message(key) });
      seen.add(key);
    });
  };
}

/** An object of exactly `fields`: another field fails with `unknown(the known fields)`, a non-object with `notObject`. */
export function closedObject<T extends z.ZodRawShape>(
  fields: T,
  unknown: (known: string) => string,
  notObject = 'must be an object',
) {
  const known = Object.keys(fields).join(', ');
  return z.strictObject(fields, {
    error: (issue) => (issue.code === 'unrecognized_keys' ? unknown(known) : notObject),
  });
}

/** Two keys that make sense only together: naming one without the other is an error on the missing one. */
export function requiredTogether(a: string, b: string) {
  return (c: Record<string, unknown>, ctx: z.RefinementCtx) => {
    if ((c[a] === undefined) === (c[b] === undefined)) return;
    const [missing, present] = c[a] === undefined ? [a, b] : [b, a];
    ctx.addIssue({ code: 'custom', path: [missing], message: `required when ${present} is set` });
  };
}

/** The setting two such keys make, or undefined when neither is set. */
export function both<A, B, T>(a: A | undefined, b: B | undefined, make: (a: A, b: B) => T): T | undefined {
  return a !== undefined && b !== undefined ? make(a, b) : undefined;
}
