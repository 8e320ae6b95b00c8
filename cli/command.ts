/**
 * What a command is (name, flags, help text, examples, what it runs) and how
 * its argv is parsed: node:util parseArgs, strict, with the global flags added
 * to every command. Every parse failure is a UsageError carrying the usage.
 */
import { readFileSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { Context } from './context.js';
import { UsageError } from './errors.js';

export interface OptionSpec {
  type: 'string' | 'boolean';
  multiple?: boolean;
  short?: string;
  /** The value's name in help, e.g. `N` for `--gpus N`. */
  value?: string;
  help: string;
}

export type Values = Record<string, string | boolean | string[] | undefined>;

export interface Input {
  values: Values;
  positionals: string[];
  /** Everything after `--`, for commands that take an argv there. */
  trailing?: string[];
}

export interface Command {
  /** e.g. `job create`. */
  name: string;
  /** One line, for the lists in `flare --help` and `flare job --help`. */
  summary: string;
  /** What follows `flare <name> ` in the usage line. */
  usage: string;
  /** Paragraphs after the usage line. */
  description?: string;
  options: Record<string, OptionSpec>;
  /** Positional arguments accepted: [min, max]. @default [0, 0] */
  arity?: [number, number];
  /** Takes an argv after `--` (job create, template create/update). */
  trailing?: boolean;
  examples: string[];
  /** Extra sections at the end of the help (e.g. exit codes). */
  epilogue?: string;
  run(ctx: Context, input: Input): Promise<number>;
}

export const GLOBAL_OPTIONS: Record<string, OptionSpec> = {
  api: { type: 'string', value: 'URL', help: 'API endpoint (else $FLARE_API_URL, else "apiUrl" in the profile)' },
  token: { type: 'string', value: 'TOKEN', help: 'bearer token (else $FLARE_TOKEN, else "token" in the profile)' },
  output: { type: 'string', short: 'o', value: 'FORMAT', help: "'table' (default) or 'json' (the API's JSON)" },
  help: { type: 'boolean', short: 'h', help: 'show this help' },
};

export function usageLine(command: Command): string {
  return `usage: flare ${command.name} ${command.usage}`.trimEnd();
}

/** The text of `flare <command> --help`. */
export function helpText(command: Command): string {
  const parts = [usageLine(command), '', command.summary];
  if (command.description) parts.push('', command.description);
  if (Object.keys(command.options).length) parts.push('', 'options:', optionList(command.options));
  parts.push('', 'global options:', optionList(GLOBAL_OPTIONS));
  parts.push('', 'examples:', ...command.examples.map((e) => `  ${e}`));
  if (command.epilogue) parts.push('', command.epilogue);
  return parts.join('\n');
}

function optionList(options: Record<string, OptionSpec>): string {
  const rows = Object.entries(options).map(([name, o]) => {
    const flag = `${o.short ? `-${o.short}, ` : ''}--${name}${o.type === 'string' ? ` ${o.value ?? 'VALUE'}` : ''}`;
    return [flag, `${o.help}${o.multiple ? ' (repeatable)' : ''}`] as const;
  });
  const width = Math.max(...rows.map(([flag]) => flag.length));
  return rows.map(([flag, help]) => `  ${flag.padEnd(width)}  ${help}`).join('\n');
}

/** Parse a command's argv (global flags included); `--help` is reported as `values.help`. */
export function parseInput(command: Command, argv: string[]): Input {
  const options = { ...GLOBAL_OPTIONS, ...command.options };
  const config: ParseArgsConfig = {
    args: argv,
    options: Object.fromEntries(
      Object.entries(options).map(([name, o]) => [
        name,
        { type: o.type, ...(o.multiple ? { multiple: true } : {}), ...(o.short ? { short: o.short } : {}) },
      ]),
    ),
    allowPositionals: true,
    strict: true,
    tokens: true,
  };
  let parsed;
  try {
    parsed = parseArgs(config);
  } catch (error) {
    throw new UsageError(describeParseError(error as Error & { code?: string }), usageOf(command));
  }
  const values = parsed.values as Values;
  if (values.help) return { values, positionals: [] };

  const terminator = parsed.tokens?.find((t) => t.kind === 'option-terminator');
  let positionals = parsed.positionals;
  let trailing: string[] | undefined;
  if (command.trailing && terminator) {
    trailing = argv.slice(terminator.index + 1);
    positionals = positionals.slice(0, positionals.length - trailing.length);
  }
  const [min, max] = command.arity ?? [0, 0];
  if (positionals.length < min)
    throw new UsageError(
      `missing argument: ${command.usage.split(' ').slice(positionals.length, min).join(' ')}`,
      usageOf(command),
    );
  if (positionals.length > max) throw new UsageError(`unexpected argument '${positionals[max]}'`, usageOf(command));
  const output = values.output;
  if (output !== undefined && output !== 'table' && output !== 'json')
    throw new UsageError(`--output must be 'table' or 'json', got '${output}'`, usageOf(command));
  return { values, positionals, ...(trailing ? { trailing } : {}) };
}

export function usageOf(command: Command): string {
  return `${usageLine(command)}\nRun 'flare ${command.name} --help' for its options and examples.`;
}

function describeParseError(error: Error & { code?: string }): string {
  const quoted = /'([^']+)'/.exec(error.message)?.[1];
  switch (error.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `unknown option '${quoted ?? error.message}'`;
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      // "Option '--name <value>' argument missing" or "... argument is ambiguous".
      return quoted
        ? `option ${quoted.replace(' <value>', '')} needs a value${/ambiguous/.test(error.message) ? ` (use ${quoted.replace(' <value>', '')}=VALUE for a value starting with '-')` : ''}`
        : error.message;
    default:
      return error.message;
  }
}

// ---- typed access to parsed values ----

export function stringOf(values: Values, name: string): string | undefined {
  const v = values[name];
  return typeof v === 'string' ? v : undefined;
}

export function flagOf(values: Values, name: string): boolean {
  return values[name] === true;
}

export function listOf(values: Values, name: string): string[] {
  const v = values[name];
  return Array.isArray(v) ? v : typeof v === 'string' ? [v] : [];
}

/** A number flag: anything numeric goes to the API, which says what it accepts; non-numbers are usage errors. */
export function numberOf(values: Values, name: string, usage: string): number | undefined {
  const raw = stringOf(values, name);
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(n)) throw new UsageError(`--${name} must be a number, got '${raw}'`, usage);
  return n;
}

/** The `--limit N` option of a listing; read it with limitOf. */
export const LIMIT_OPTION = { type: 'string', value: 'N', help: 'list at most N (default: all)' } as const;

/** `--limit N`: a whole number of at least 1. */
export function limitOf(values: Values, usage: string): number | undefined {
  const n = numberOf(values, 'limit', usage);
  if (n !== undefined && (!Number.isInteger(n) || n < 1))
    throw new UsageError(`--limit must be a whole number of at least 1, got '${stringOf(values, 'limit')}'`, usage);
  return n;
}

/** Seconds between polls, as milliseconds. */
export function intervalOf(values: Values, usage: string): number {
  const seconds = numberOf(values, 'interval', usage) ?? 1;
  if (!(seconds > 0) || seconds > 3600)
    throw new UsageError(
      `--interval must be more than 0 and at most 3600 seconds, got '${stringOf(values, 'interval')}'`,
      usage,
    );
  return seconds * 1000;
}

/** `--env KEY=VALUE`, repeatable. */
export function envOf(values: Values, usage: string): Record<string, string> | undefined {
  return pairsOf(values, 'env', 'KEY=VALUE', usage);
}

/** A repeatable `--flag KEY=VALUE` (`--env`, `--secret ENV=NAME`) as an object. */
export function pairsOf(
  values: Values,
  flag: string,
  shape: string,
  usage: string,
): Record<string, string> | undefined {
  const pairs = listOf(values, flag);
  if (!pairs.length) return undefined;
  const map: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`--${flag} takes ${shape}, got '${pair}'`, usage);
    map[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return map;
}

/**
 * A command's argv: the words after `--` (`-- python train.py --lr 0.1`), or
 * `--command` holding a JSON array of strings. Never split through a shell.
 */
export function commandOf(input: Input, usage: string): string[] | undefined {
  const json = stringOf(input.values, 'command');
  if (json !== undefined && input.trailing !== undefined)
    throw new UsageError("give the command either after '--' or with --command, not both", usage);
  if (input.trailing !== undefined) {
    if (!input.trailing.length)
      throw new UsageError("nothing after '--': put the command's words there, e.g. -- python train.py", usage);
    return input.trailing;
  }
  if (json === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    parsed = undefined;
  }
  if (!Array.isArray(parsed) || !parsed.every((w) => typeof w === 'string')) {
    throw new UsageError(
      `--command takes a JSON array of strings, e.g. --command '["python","train.py"]'; or put the words after '--'`,
      usage,
    );
  }
  return parsed;
}

/** `--file FILE` (or `-` for stdin): a JSON object. */
export function jsonFileOf(values: Values, usage: string): Record<string, unknown> | undefined {
  const path = stringOf(values, 'file');
  if (path === undefined) return undefined;
  const parsed = readJsonFile(path, usage);
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed))
    throw new UsageError(`${path} must hold a JSON object`, usage);
  return parsed as Record<string, unknown>;
}

/** `--array-env FILE` (or `-` for stdin): a JSON array of objects of strings, one per array index. */
export function arrayEnvOf(values: Values, usage: string): Record<string, string>[] | undefined {
  const path = stringOf(values, 'array-env');
  if (path === undefined) return undefined;
  const parsed = readJsonFile(path, usage);
  const isEnv = (e: unknown) =>
    !!e && typeof e === 'object' && !Array.isArray(e) && Object.values(e).every((v) => typeof v === 'string');
  if (!Array.isArray(parsed) || !parsed.every(isEnv))
    throw new UsageError(
      `${path} must hold a JSON array of objects, one per index, e.g. [{"LR":"0.1"},{"LR":"0.01"}]`,
      usage,
    );
  return parsed as Record<string, string>[];
}

function readJsonFile(path: string, usage: string): unknown {
  let text: string;
  try {
    text = readFileSync(path === '-' ? 0 : path, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read ${path}: ${(error as Error).message}`, usage);
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new UsageError(`${path} is not JSON: ${(error as Error).message}`, usage);
  }
}

/** Drop undefined fields: only what the user gave goes to the API. */
export function defined<T extends Record<string, unknown>>(fields: T): Partial<T> {
  return Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined)) as Partial<T>;
}
