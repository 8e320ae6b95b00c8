/**
 * Where the API is and who we are: `--api`/`--token`, else FLARE_API_URL /
 * FLARE_TOKEN, else the profile file ($FLARE_CONFIG or
 * ~/.config/flare/config.json: `{ "apiUrl": "...", "token": "..." }`). The
 * profile is read only for what flags and environment leave open, and refused
 * when it holds a token that others on the machine can read.
 */
import { readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { CliError, ExitCode } from './errors.js';

export interface Connection {
  apiUrl?: string;
  token?: string;
  /** Where the profile is (or would be), for messages. */
  profilePath: string;
}

const PROFILE_KEYS = ['apiUrl', 'token'];

export function profilePath(env: NodeJS.ProcessEnv): string {
  return env.FLARE_CONFIG || join(env.HOME || homedir(), '.config', 'flare', 'config.json');
}

export function resolveConnection(flags: { api?: string; token?: string }, env: NodeJS.ProcessEnv): Connection {
  const path = profilePath(env);
  let apiUrl = flags.api ?? nonEmpty(env.FLARE_API_URL);
  let token = flags.token ?? nonEmpty(env.FLARE_TOKEN);
  if (apiUrl === undefined || token === undefined) {
    const profile = readProfile(path, Boolean(env.FLARE_CONFIG));
    apiUrl ??= profile.apiUrl;
    token ??= profile.token;
  }
  if (apiUrl !== undefined) apiUrl = checkUrl(apiUrl);
  return { apiUrl, token, profilePath: path };
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

function checkUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new CliError(`the API URL '${raw}' is not a URL (expected e.g. http://127.0.0.1:8080)`, ExitCode.USAGE);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new CliError(`the API URL '${raw}' must start with http:// or https://`, ExitCode.USAGE);
  return raw.replace(/\/+$/, '');
}

function readProfile(path: string, named: boolean): { apiUrl?: string; token?: string } {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    // The default profile is optional; one named by FLARE_CONFIG must be there.
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' && !named) return {};
    throw new CliError(`cannot read the profile ${path}: ${(error as Error).message}`, ExitCode.USAGE);
  }
  let profile: unknown;
  try {
    profile = JSON.parse(text);
  } catch (error) {
    throw new CliError(`the profile ${path} is not JSON: ${(error as Error).message}`, ExitCode.USAGE);
  }
  if (!profile || typeof profile !== 'object' || Array.isArray(profile))
    throw new CliError(
      `the profile ${path} must hold a JSON object like {"apiUrl": "...", "token": "..."}`,
      ExitCode.USAGE,
    );
  const entries = profile as Record<string, unknown>;
  const problems = [
    ...Object.keys(entries)
      .filter((k) => !PROFILE_KEYS.includes(k))
      .map((k) => `${k}: unknown key (expected ${PROFILE_KEYS.join(', ')})`),
    ...PROFILE_KEYS.filter(
      (k) => entries[k] !== undefined && (typeof entries[k] !== 'string' || entries[k] === ''),
    ).map((k) => `${k}: must be a non-empty string`),
  ];
  if (problems.length) throw new CliError(`the profile ${path} is invalid`, ExitCode.USAGE, problems);
  if (entries.token !== undefined && process.platform !== 'win32') {
    const mode = statSync(path).mode & 0o777;
    if (mode & 0o077) {
      throw new CliError(
        `the profile ${path} holds a token but group or others may read or write it (mode ${mode.toString(8).padStart(3, '0')}); run: chmod 600 ${path}`,
        ExitCode.USAGE,
      );
    }
  }
  return entries as { apiUrl?: string; token?: string };
}
