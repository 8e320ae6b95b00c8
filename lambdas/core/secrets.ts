/**
 * Project secrets: named, write-only values a job maps into its environment
 * (`secrets: { ENV_NAME: "secret-name" }`). The API puts, lists (names only) and
 * deletes them; a value leaves the store only for a job's environment (the
 * compute driver, or on AWS the instance itself) and to be masked in the logs
 * the API serves. A job records the mapping, never a value.
 */
import { z } from 'zod';
import type { Deps } from './deps.js';
import { FLARE_SET_ENV_RULE, isFlareSetEnvName } from './env-names.js';
import { FlareError, NotFound, Unprocessable, ValidationError, type FieldIssue } from './errors.js';
import { canAccessProject, type Identity } from './identity.js';
import type { SecretStore, SecretSummary } from '../ports/secrets.js';

/** Letters, digits, `_` and `-`, starting with a letter or `_`: valid in a file key and a Secrets Manager name. */
export const SECRET_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_-]{0,63}$/;
export const SECRET_NAME_RULE = '1-64 letters, digits, _ or -, starting with a letter or _';
/** Characters; far below Secrets Manager's 64 KiB, and a value must fit a process environment. */
export const MAX_SECRET_VALUE_LENGTH = 16_384;
/** Secrets one project may hold: a list is one answer. */
export const MAX_SECRETS_PER_PROJECT = 100;

export const secretName = z.string().regex(SECRET_NAME_PATTERN, `must be ${SECRET_NAME_RULE}`);

export const PutSecretInput = z.strictObject({
  value: z
    .string()
    .min(1, 'must not be empty')
    .max(MAX_SECRET_VALUE_LENGTH, `must be at most ${MAX_SECRET_VALUE_LENGTH} characters`)
    .refine((s) => !s.includes('\0'), 'must not contain NUL: it could not cross into a process environment')
    .describe('The value: write-only, never returned by the API'),
});
export type PutSecretInput = z.infer<typeof PutSecretInput>;

/** A job's `secrets`: environment variable name -> secret name. Checked as the env map's names are. */
export const secretsMap = z
  .preprocess(
    // JSON.parse makes "__proto__" an own key, which a zod record would skip without a word.
    (value, ctx) => {
      if (value && typeof value === 'object' && Object.hasOwn(value, '__proto__'))
        ctx.addIssue({ code: 'custom', path: ['__proto__'], message: 'is not an environment variable name here' });
      return value;
    },
    z.record(
      z
        .string()
        .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'environment variable names are letters, digits and _')
        .refine((n) => !isFlareSetEnvName(n), FLARE_SET_ENV_RULE)
        .refine((n) => n !== 'constructor' && n !== 'prototype', 'is reserved'),
      secretName,
    ),
  )
  .refine((m) => Object.keys(m as object).length <= 64, 'at most 64 variables')
  .meta({
    maxProperties: 64,
    description: `Environment variables taken from the project's secrets: ENV_NAME -> secret name (${SECRET_NAME_RULE}). Only the names are stored with the job.`,
  });

/** A deployment wired no secret store (a bug in its wiring, not the caller's). */
export class SecretsNotWired extends FlareError {}

function store(deps: Deps): SecretStore {
  if (!deps.secrets) throw new SecretsNotWired('this deployment has no secret store wired (Deps.secrets)');
  return deps.secrets;
}

/** Another project's secrets do not exist for the caller (404, like its jobs). */
function authorizeProject(identity: Identity, project: string): void {
  if (!canAccessProject(identity, project)) throw new NotFound('project', project);
}

export async function putSecret(
  deps: Deps,
  identity: Identity,
  project: string,
  name: string,
  input: PutSecretInput,
): Promise<void> {
  authorizeProject(identity, project);
  const secrets = store(deps);
  const existing = await secrets.list(project);
  if (!existing.some((s) => s.name === name) && existing.length >= MAX_SECRETS_PER_PROJECT)
    throw new Unprocessable(
      `project ${project} has ${existing.length} secrets, the most a project may hold: delete one first`,
    );
  await secrets.put(project, name, input.value, deps.now().toISOString());
}

export async function listSecrets(
  deps: Deps,
  identity: Identity,
  project: string,
): Promise<{ items: SecretSummary[] }> {
  authorizeProject(identity, project);
  const items = await store(deps).list(project);
  return { items: items.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)) };
}

export async function deleteSecret(deps: Deps, identity: Identity, project: string, name: string): Promise<void> {
  authorizeProject(identity, project);
  if (!(await store(deps).delete(project, name))) throw new NotFound('secret', name);
}

/**
 * A job's mapping, checked at submit: no name both in `env` and `secrets`, every
 * secret present in the project. 400 naming `secrets.<ENV>` otherwise.
 */
export async function checkJobSecrets(
  deps: Deps,
  project: string,
  secrets: Record<string, string>,
  env: Record<string, string>,
): Promise<void> {
  const names = Object.keys(secrets);
  if (names.length === 0) return;
  const issues: FieldIssue[] = names
    .filter((envName) => Object.hasOwn(env, envName))
    .map((envName) => ({ field: `secrets.${envName}`, reason: 'is also set in env: give it one source' }));
  const missing = new Set(await store(deps).missing(project, [...new Set(Object.values(secrets))]));
  for (const [envName, secret] of Object.entries(secrets))
    if (missing.has(secret))
      issues.push({ field: `secrets.${envName}`, reason: `project ${project} has no secret named '${secret}'` });
  if (issues.length > 0) throw new ValidationError(issues);
}

/** What a masked value reads as in served logs. */
export const MASK = '***';

/**
 * The job's secret values, for masking: each line of a multi-line value on its own
 * (log lines are single lines), longest first so a value containing another is
 * masked whole. A secret deleted since can no longer be masked.
 */
export async function maskableValues(deps: Deps, job: { project: string; secrets?: Record<string, string> }) {
  const names = [...new Set(Object.values(job.secrets ?? {}))];
  if (names.length === 0) return [];
  const values = await store(deps).values(job.project, names);
  const parts = [...values.values()].flatMap((v) => v.split(/\r?\n/)).filter((p) => p.length > 0);
  return [...new Set(parts)].sort((a, b) => b.length - a.length);
}

export function maskLine(message: string, values: readonly string[]): string {
  let masked = message;
  for (const value of values) masked = masked.split(value).join(MASK);
  return masked;
}
