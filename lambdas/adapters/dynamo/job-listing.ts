/**
 * `GET /v1/jobs` on DynamoDB: newest first, for members (their projects) and
 * admins (every project) alike, from the `byProject` index. Each project's
 * partition is read newest first in small pages, only as far as the merge
 * needs, and the merge takes the newest head each time; the token is the
 * `createdKey` (createdAt#id, unique) of the last job shown, so a page never
 * repeats or skips a job, whatever is added meanwhile.
 *
 * An admin's projects are those with a `jobs` usage row: the submit writes
 * that row in the very transaction that stores the job, and no row is ever
 * deleted, so no project with a job is missed.
 */
import { QueryCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { JobState } from '../../core/job.js';
import { decodePageToken, encodePageToken } from '../../core/pagination.js';
import { readAll } from './paging.js';
import type { TableNames } from './table-names.js';

type Item = Record<string, unknown>;
type Key = Record<string, unknown>;

/** What a jobs page token may name: a `createdKey`. */
const CREATED_KEY = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z#[\x21-\x7e]{1,128}$/;
/** Items a project's partition is read by at least: small, so a project with nothing new costs little. */
const MIN_READ = 10;

/** Up to `limit` job items newest first, and the token of the page after them. */
export async function listJobItems(
  doc: DynamoDBDocumentClient,
  tables: TableNames,
  filter: { projects?: readonly string[]; state?: JobState },
  page: { limit: number; nextToken?: string },
): Promise<{ items: Item[]; nextToken?: string }> {
  const before = page.nextToken === undefined ? undefined : decodePageToken('jobs', page.nextToken, CREATED_KEY);
  const projects = filter.projects ?? (await projectsWithJobs(doc, tables));
  // Each partition reads about its share of the page at a time (more on demand), not a whole page.
  const read = Math.min(
    page.limit + 1,
    Math.max(MIN_READ, Math.ceil((2 * (page.limit + 1)) / Math.max(projects.length, 1))),
  );
  const partitions = projects.map((project) => new Partition(doc, tables.jobs, project, filter.state, before, read));
  const taken = await newestFirst(partitions, page.limit + 1);
  const items = taken.slice(0, page.limit);
  return taken.length > page.limit
    ? { items, nextToken: encodePageToken('jobs', String(items.at(-1)!.createdKey)) }
    : { items };
}

/** The `count` newest items across `partitions`, newest first. */
async function newestFirst(partitions: readonly Partition[], count: number): Promise<Item[]> {
  const taken: Item[] = [];
  while (taken.length < count) {
    const heads = await Promise.all(partitions.map((partition) => partition.head()));
    let newest = -1;
    heads.forEach((head, i) => {
      if (head && (newest < 0 || String(head.createdKey) > String(heads[newest]!.createdKey))) newest = i;
    });
    if (newest < 0) break;
    taken.push(partitions[newest]!.take());
  }
  return taken;
}

/** One project's jobs in the `byProject` index, newest first, before the token's key, read a page at a time. */
class Partition {
  private readonly buffer: Item[] = [];
  private start: Key | undefined;
  private ended = false;

  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly table: string,
    private readonly project: string,
    private readonly state: JobState | undefined,
    private readonly before: string | undefined,
    private readonly limit: number,
  ) {}

  /** The newest job not yet taken (reading on while pages come back empty under the state filter). */
  async head(): Promise<Item | undefined> {
    while (this.buffer.length === 0 && !this.ended) {
      const { Items = [], LastEvaluatedKey } = await this.doc.send(
        new QueryCommand({
          TableName: this.table,
          IndexName: 'byProject',
          KeyConditionExpression: this.before ? '#project = :p AND createdKey < :c' : '#project = :p',
          ExpressionAttributeNames: { '#project': 'project', ...(this.state ? { '#state': 'state' } : {}) },
          ...(this.state ? { FilterExpression: '#state = :s' } : {}),
          ExpressionAttributeValues: {
            ':p': this.project,
            ...(this.before ? { ':c': this.before } : {}),
            ...(this.state ? { ':s': this.state } : {}),
          },
          ScanIndexForward: false,
          Limit: this.limit,
          ExclusiveStartKey: this.start,
        }),
      );
      this.buffer.push(...Items);
      this.start = LastEvaluatedKey;
      this.ended = LastEvaluatedKey === undefined;
    }
    return this.buffer[0];
  }

  take(): Item {
    return this.buffer.shift()!;
  }
}

/** Every project that ever stored a job: its `jobs` usage row (the quotas table is one row per project and resource). */
async function projectsWithJobs(doc: DynamoDBDocumentClient, tables: TableNames): Promise<string[]> {
  const rows = await readAll(doc, {
    Scan: {
      TableName: tables.quotas,
      FilterExpression: '#resource = :jobs',
      ProjectionExpression: '#project',
      ExpressionAttributeNames: { '#resource': 'resource', '#project': 'project' },
      ExpressionAttributeValues: { ':jobs': 'jobs' },
    },
  });
  return rows.map((item) => String(item.project));
}
