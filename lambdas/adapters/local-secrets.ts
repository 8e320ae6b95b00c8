/**
 * Project secrets on this machine: one JSON file per project under
 * `<dataDir>/secrets/` (directory 0700, files 0600, written whole and renamed
 * into place). Writes go one at a time: the local plane is the only writer of
 * its data directory (its lock says so).
 */
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { SecretStore, SecretSummary } from '../ports/secrets.js';
import { writeAtomically } from './local-supervisor/jobs.js';

interface Stored {
  value: string;
  updatedAt: string;
}

/** Project names are NAME_PATTERN (contract/vocabulary.ts): safe as file names; checked again here. */
const PROJECT_FILE = /^[a-z0-9][a-z0-9._-]*$/i;

export class LocalSecretStore implements SecretStore {
  private readonly dir: string;
  private writes: Promise<unknown> = Promise.resolve();

  constructor(dataDir: string) {
    this.dir = join(dataDir, 'secrets');
  }

  async put(project: string, name: string, value: string, updatedAt: string): Promise<void> {
    await this.change(project, (all) => {
      all[name] = { value, updatedAt };
      return true;
    });
  }

  async list(project: string): Promise<SecretSummary[]> {
    return Object.entries(await this.read(project)).map(([name, s]) => ({ name, updatedAt: s.updatedAt }));
  }

  async delete(project: string, name: string): Promise<boolean> {
    return this.change(project, (all) => {
      if (!Object.hasOwn(all, name)) return false;
      delete all[name];
      return true;
    });
  }

  async missing(project: string, names: readonly string[]): Promise<string[]> {
    const all = await this.read(project);
    return names.filter((n) => !Object.hasOwn(all, n));
  }

  async values(project: string, names: readonly string[]): Promise<Map<string, string>> {
    const all = await this.read(project);
    return new Map(names.filter((n) => Object.hasOwn(all, n)).map((n) => [n, all[n]!.value]));
  }

  private file(project: string): string {
    if (!PROJECT_FILE.test(project) || project.includes('..'))
      throw new Error(`project ${JSON.stringify(project)} cannot name a secrets file`);
    return join(this.dir, `${project}.json`);
  }

  private async read(project: string): Promise<Record<string, Stored>> {
    try {
      const parsed = JSON.parse(await readFile(this.file(project), 'utf8')) as Record<string, Stored>;
      return Object.assign(Object.create(null) as Record<string, Stored>, parsed);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return Object.create(null) as Record<string, Stored>;
      throw error;
    }
  }

  /** Read, change and write the project's file, one change at a time; `edit` returns whether it changed anything. */
  private change(project: string, edit: (all: Record<string, Stored>) => boolean): Promise<boolean> {
    const run = this.writes.then(async () => {
      const all = await this.read(project);
      if (!edit(all)) return false;
      await mkdir(this.dir, { recursive: true, mode: 0o700 });
      if (Object.keys(all).length === 0) await rm(this.file(project), { force: true });
      else await writeAtomically(this.file(project), JSON.stringify(all));
      return true;
    });
    this.writes = run.catch(() => {});
    return run;
  }
}
