/** What the dashboard reads of the API: the API's own response schemas (lambdas/core/views.ts), as types only. */
import type { z } from 'zod';
import { QUEUED_STATES, TERMINAL_STATES } from '../../contract/vocabulary.js';
import type {
  Job as JobSchema,
  JobLogs as JobLogsSchema,
  JobOutputs as JobOutputsSchema,
  Pool as PoolSchema,
  PoolHistory as PoolHistorySchema,
  Quota as QuotaSchema,
} from '../../lambdas/core/views.js';

export type Job = z.output<typeof JobSchema>;
export type JobLogs = z.output<typeof JobLogsSchema>;
export type JobOutputs = z.output<typeof JobOutputsSchema>;
export type Pool = z.output<typeof PoolSchema>;
export type PoolHistory = z.output<typeof PoolHistorySchema>;
export type Quota = z.output<typeof QuotaSchema>;
export interface Page<T> {
  items: T[];
  nextToken?: string;
}

export const isTerminal = (job: Pick<Job, 'state'>) => TERMINAL_STATES.includes(job.state);
export const isQueued = (job: Pick<Job, 'state'>) => QUEUED_STATES.includes(job.state);
