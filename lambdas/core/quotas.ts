/**
 * Quotas: `(project, resource) -> hardLimit` with live `used`. Members read their
 * own projects' limits, admins read and write every project's.
 *
 * A row without `hardLimit` is not a quota: the project is unlimited for that
 * resource and only its usage is counted (admission keeps counting it either
 * way), so it is neither listed nor read. Lowering a limit below `used` is
 * allowed and only blocks new admissions; raising or removing one drains every
 * pool at once, so a job that waited for this project's room is admitted in the
 * same request rather than at the next reconciler run.
 *
 * `gpuHours` is a budget per period (core/budgets.ts): its view adds the period,
 * what was spent in it and what holding jobs have reserved, in GPU-hours; `used`
 * is their sum.
 */
import { budgetState, gpuHours, type BudgetPeriod } from './budgets.js';
import type { Deps } from './deps.js';
import { Conflict, NotFound } from './errors.js';
import { authorize, requireAdmin, visibleProjects, type Identity } from './identity.js';
import { pageOf, type PageQuery } from './pagination.js';
import { drainPool } from './admission.js';
import type { QuotaResource, QuotaSpec } from './schemas.js';
import type { Page } from '../ports/jobs.js';
import type { QuotaRecord } from '../ports/limits.js';

export interface QuotaView {
  project: string;
  resource: QuotaResource;
  hardLimit: number;
  used: number;
  /** gpuHours only: the current period and its GPU-hours spent and reserved (`used` = spent + reserved). */
  period?: BudgetPeriod;
  periodStart?: string;
  periodEnd?: string;
  spent?: number;
  reserved?: number;
}

export async function listQuotas(
  deps: Pick<Deps, 'limits' | 'now'>,
  identity: Identity,
  query: PageQuery & { project?: string },
): Promise<Page<QuotaView>> {
  const projects = visibleProjects(identity, query.project);
  const rows =
    projects === undefined
      ? await deps.limits.listQuotas()
      : (await Promise.all(projects.map((p) => deps.limits.listQuotas(p)))).flat();
  // A space sorts below every character a project name may hold: project first, then resource.
  const now = deps.now();
  return pageOf(
    'quotas',
    rows.filter(hasLimit).map((row) => quotaView(row, now)),
    query,
    (q) => `${q.project} ${q.resource}`,
  );
}

/** Another project's quota is a 404, like a limit that does not exist. */
export async function getQuota(
  deps: Pick<Deps, 'limits' | 'now'>,
  identity: Identity,
  project: string,
  resource: QuotaResource,
): Promise<QuotaView> {
  authorize(identity, 'read', { kind: 'quota', project }, quotaId(project, resource));
  const row = await deps.limits.getQuota(project, resource);
  if (!row || !hasLimit(row)) throw new NotFound('quota', quotaId(project, resource));
  return quotaView(row, deps.now());
}

/**
 * A new limit; the project's usage so far counts against it at once (for a budget: what holding jobs reserved).
 * Admins only, whatever the project: a member's answer is one 403 that says nothing of whether the project exists.
 */
export async function createQuota(
  deps: Pick<Deps, 'limits' | 'now'>,
  identity: Identity,
  spec: QuotaSpec,
): Promise<QuotaView> {
  requireAdmin(identity, 'set quotas');
  const now = deps.now();
  const row = await deps.limits.putQuota(spec, 'new', now);
  if (!row) {
    throw new Conflict(
      `project ${spec.project} already has a ${spec.resource} limit; change it with PATCH ${quotaPath(spec.project, spec.resource)}`,
    );
  }
  return quotaView({ ...row, hardLimit: spec.hardLimit }, now);
}

/** Change a limit. Whatever the direction, the queues are drained: a raise admits who waited for it. */
export async function updateQuota(
  deps: Deps,
  identity: Identity,
  project: string,
  resource: QuotaResource,
  hardLimit: number,
): Promise<QuotaView> {
  authorize(identity, 'write', { kind: 'quota', project }, quotaId(project, resource));
  const row = await deps.limits.putQuota({ project, resource, hardLimit }, 'existing', deps.now());
  if (!row) throw new NotFound('quota', quotaId(project, resource));
  await drainAllPools(deps);
  return getQuota(deps, identity, project, resource);
}

/** Remove a limit: the project is unlimited for the resource again; usage keeps being counted. */
export async function deleteQuota(
  deps: Deps,
  identity: Identity,
  project: string,
  resource: QuotaResource,
): Promise<void> {
  authorize(identity, 'write', { kind: 'quota', project }, quotaId(project, resource));
  if (!(await deps.limits.removeQuotaLimit(project, resource))) throw new NotFound('quota', quotaId(project, resource));
  await drainAllPools(deps);
}

export function quotaPath(project: string, resource: QuotaResource): string {
  return `/v1/quotas/${encodeURIComponent(project)}/${resource}`;
}

/**
 * Every pool, because a project's jobs may wait in any of them. A failure here
 * surfaces (the limit is already stored): the request is safe to repeat, and the
 * reconciler drains too.
 */
async function drainAllPools(deps: Deps): Promise<void> {
  for (const pool of await deps.limits.listPools()) await drainPool(deps, pool.name);
}

type LimitedQuota = QuotaRecord & { hardLimit: number };

function hasLimit(row: QuotaRecord): row is LimitedQuota {
  return row.hardLimit !== undefined;
}

function quotaId(project: string, resource: QuotaResource): string {
  return `${project}/${resource}`;
}

function quotaView(row: LimitedQuota, now: Date): QuotaView {
  if (row.resource !== 'gpuHours')
    return { project: row.project, resource: row.resource, hardLimit: row.hardLimit, used: row.used };
  const budget = budgetState(row, now);
  return {
    project: row.project,
    resource: row.resource,
    hardLimit: row.hardLimit,
    used: gpuHours(budget.spentGpuMs + budget.reservedGpuMs),
    period: budget.period,
    periodStart: budget.periodStart,
    periodEnd: budget.periodEnd,
    spent: gpuHours(budget.spentGpuMs),
    reserved: gpuHours(budget.reservedGpuMs),
  };
}
