/**
 * The field rules every input schema is built from (schemas.ts, job-schemas.ts):
 * names, argv, environment maps, JSON numbers, GPU counts and live timeouts.
 */
import { z } from 'zod';
import { NAME_PATTERN, NAME_RULE } from '../../contract/vocabulary.js';
import { FLARE_SET_ENV_RULE, isFlareSetEnvName } from './env-names.js';

/** A name field (project, pool, image, template...): `what` is what the message calls it. */
export const name = (what: string) => z.string().regex(NAME_PATTERN, `${what} must be ${NAME_RULE}`);

/** An argv element: no NUL (it cannot cross exec), bounded. */
const argvElement = z
  .string()
  .min(1, 'must not be empty')
  .max(4096)
  .refine((s) => !s.includes('\0'), 'must not contain NUL');
export const argv = z.array(argvElement).min(1, 'must have at least one element').max(256);

const envName = /^[A-Za-z_][A-Za-z0-9_]*$/;
export const MAX_ENV_VARS = 64;
/** Names that are an object's machinery in JavaScript: refused, never merged into or looked up in an env map. */
const RESERVED_ENV_NAMES = new Set(['__proto__', 'constructor', 'prototype']);
const envRecord = z
  .record(
    z
      .string()
      .regex(envName, 'environment variable names are letters, digits and _')
      .refine((name) => !isFlareSetEnvName(name), FLARE_SET_ENV_RULE)
      .meta({ not: { enum: [...RESERVED_ENV_NAMES] } }),
    z
      .string()
      .max(4096)
      .refine((s) => !s.includes('\0'), 'must not contain NUL'),
  )
  .refine((env) => Object.keys(env).length <= MAX_ENV_VARS, `at most ${MAX_ENV_VARS} variables`)
  .meta({
    maxProperties: MAX_ENV_VARS,
    description: `Environment variables: at most ${MAX_ENV_VARS}, named with letters, digits and _ (not starting with a digit; not __proto__, constructor or prototype; not FLARE_* or the NVIDIA runtime's device selectors, which Flare sets), each value a string of at most 4096 characters without NUL.`,
  });
/**
 * Environment variables, name -> value. JSON.parse makes `"__proto__"` an own key, which
 * zod's record skips without a word (and an own `constructor` makes it no record at all):
 * such keys are refused by name here, with whatever else is wrong in the rest.
 */
export const envMap = z.preprocess((value, ctx) => {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return value;
  const reserved = Object.keys(value).filter((key) => RESERVED_ENV_NAMES.has(key));
  if (reserved.length === 0) return value;
  const rest = Object.fromEntries(Object.entries(value).filter(([key]) => !RESERVED_ENV_NAMES.has(key)));
  // An issue here ends the parse before the record runs: report the rest's issues too, in one answer.
  const issues = [
    ...reserved.map((key) => ({
      path: [key],
      message: 'is reserved: __proto__, constructor and prototype are not environment variable names here',
    })),
    ...(envRecord.safeParse(rest).error?.issues ?? []),
  ];
  for (const { path, message } of issues) ctx.addIssue({ code: 'custom', path, message, input: value });
  return rest;
}, envRecord);

/**
 * Every number Flare reads from JSON: one beyond a double's range (`1e309` parses to
 * Infinity) is out of range, where zod alone says "expected number, received number".
 */
export function jsonNumber() {
  return z.number({
    error: (issue) =>
      issue.input === Infinity || issue.input === -Infinity ? 'is out of range: must be a finite number' : undefined,
  });
}

export const positiveGpus = jsonNumber().int('must be a whole number').positive('must be at least 1').max(1024);
export const liveTimeoutMinutes = jsonNumber()
  .positive('must be greater than 0')
  .max(60 * 24 * 30, 'must be at most 30 days');
