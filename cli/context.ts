/** What a command runs with: where to write, the clock, the API client, the output format. */
import { ApiClient } from './client.js';
import { resolveConnection } from './connection.js';
import { CliError, ExitCode } from './errors.js';
import type { Values } from './command.js';

export interface Io {
  stdout(text: string): void;
  stderr(text: string): void;
  env: NodeJS.ProcessEnv;
  now(): Date;
  sleep(ms: number): Promise<void>;
}

export class Context {
  readonly json: boolean;

  constructor(
    readonly io: Io,
    private readonly values: Values,
  ) {
    this.json = values.output === 'json';
  }

  /** The API client; `auth: false` for the routes anyone may call (health). */
  api(options: { auth?: boolean } = {}): ApiClient {
    const { apiUrl, token, profilePath } = resolveConnection(
      {
        api: typeof this.values.api === 'string' ? this.values.api : undefined,
        token: typeof this.values.token === 'string' ? this.values.token : undefined,
      },
      this.io.env,
    );
    if (!apiUrl)
      throw new CliError(
        `no API URL: pass --api URL, set FLARE_API_URL, or put "apiUrl" in ${profilePath}`,
        ExitCode.USAGE,
      );
    if (options.auth !== false && !token)
      throw new CliError(
        `no API token: pass --token TOKEN, set FLARE_TOKEN, or put "token" in ${profilePath} (mode 600)`,
        ExitCode.USAGE,
      );
    return new ApiClient(apiUrl, options.auth === false ? undefined : token);
  }

  /** A line (or lines) on stdout. */
  print(text: string): void {
    this.io.stdout(text.endsWith('\n') ? text : `${text}\n`);
  }

  /** The API's JSON, pretty. */
  printJson(value: unknown): void {
    this.print(JSON.stringify(value, null, 2));
  }

  /** An answer: its JSON with `--output json`, else `view` of it for people. */
  show<T>(value: T, view: (value: T) => string): void {
    if (this.json) this.printJson(value);
    else this.print(view(value));
  }

  /** The answer of a DELETE, which may have no body (204): its JSON when there is one, else `done` for people. */
  showDone(answer: unknown, done: string): void {
    if (!this.json) this.print(done);
    else if (answer !== undefined) this.printJson(answer);
  }

  /** A progress line: on stderr with `--output json`, whose stdout holds only the final JSON. */
  readonly progress = (line: string): void => {
    if (this.json) this.io.stderr(`${line}\n`);
    else this.print(line);
  };
}
