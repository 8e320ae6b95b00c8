/** Reading quotas: members see their own projects' rows, admins every row. */
import type { Deps } from './deps.js';
import { NotFound } from './errors.js';
import { canAccessProject, visibleProjects, type Identity } from './identity.js';
import type { QuotaResource } from './schemas.js';
import type { QuotaRecord } from '../ports/job-store.js';

export interface QuotaView {
  project: string;
  resource: QuotaResource;
  /** null: no limit, usage is still counted. */
  hardLimit: number | null;
  used: number;
}

export async function listQuotas(deps: Pick<Deps, 'store'>, identity: Identity, project?: string): Promise<QuotaView[]> {
  const projects = visibleProjects(identity, project);
  const rows = projects === undefined ? await deps.store.listQuotas() : (await Promise.all(projects.map((p) => deps.store.listQuotas(p)))).flat();
  return rows.map(quotaView).sort((a, b) => (a.project === b.project ? a.resource.localeCompare(b.resource) : a.project.localeCompare(b.project)));
}

/** Another project's quota is a 404, like a row that does not exist. */
export async function getQuota(deps: Pick<Deps, 'store'>, identity: Identity, project: string, resource: QuotaResource): Promise<QuotaView> {
  const row = canAccessProject(identity, project) ? await deps.store.getQuota(project, resource) : undefined;
  if (!row) throw new NotFound('quota', `${project}/${resource}`);
  return quotaView(row);
}

function quotaView(row: QuotaRecord): QuotaView {
  return { project: row.project, resource: row.resource, hardLimit: row.hardLimit ?? null, used: row.used };
}
