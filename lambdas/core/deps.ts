import type { Compute } from '../ports/compute.js';
import type { EventPublisher } from '../ports/events.js';
import type { Catalog, JobStore } from '../ports/job-store.js';
import type { Workflows } from '../ports/workflows.js';

export interface Logger {
  info(message: string, data?: Record<string, unknown>): void;
  warn(message: string, data?: Record<string, unknown>): void;
  error(message: string, data?: Record<string, unknown>): void;
}

/** The ports core works through; a handler or the local runner picks the adapters. */
export interface Deps {
  store: JobStore;
  catalog: Catalog;
  compute: Compute;
  workflows: Workflows;
  events: EventPublisher;
  log: Logger;
  now(): Date;
  newId(): string;
}
