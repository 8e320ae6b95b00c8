/**
 * Job templates (the thesis's JobTemplate): what a job of them runs and its limits.
 * A template belongs to a project, whose members write it, or is public: admins
 * write it and anyone signed in reads and runs it. Names are unique per owner (a
 * project's templates, or the public ones); ids (`tpl-...`) never change.
 *
 * A route's `{id}` is an id or a name. A name resolves among the caller's
 * projects' templates (or only `?project=`'s), then among the public ones; when
 * several of the caller's projects have a template of that name, the request is
 * refused (400 naming `project`) rather than guessing.
 */
import { isDeepStrictEqual } from 'node:util';
import { gpusIssue } from './accounting.js';
import type { Deps } from './deps.js';
import { Conflict, NotFound, ValidationError, type FieldIssue } from './errors.js';
import { allowed, authorize, canAccessProject, chooseProject, type Identity, type Resource } from './identity.js';
import { versionToRun } from './images.js';
import { pageOf, type PageQuery } from './pagination.js';
import { minVolumeSizeGb } from './policy.js';
import { parse, TEMPLATE_ID_PREFIX, TemplateSpec, type TemplatePatch } from './schemas.js';
import type { TemplateRecord } from '../ports/catalog.js';
import type { Page } from '../ports/jobs.js';

/**
 * How long a delete's mark holds while it looks for active jobs. Far longer than
 * the look takes; short enough that a delete that crashed midway stops blocking
 * new jobs and changes of the template soon.
 */
const DELETE_MARK_MS = 5 * 60_000;

type TemplateDeps = Pick<Deps, 'catalog' | 'queue' | 'limits' | 'now' | 'newId' | 'policy'>;

export type ListTemplatesQuery = PageQuery & { project?: string };

/** `POST /v1/templates`: a template of `spec.project` (or the caller's only project), or a public one (admins). */
export async function createTemplate(
  deps: TemplateDeps,
  identity: Identity,
  spec: TemplateSpec,
): Promise<TemplateRecord> {
  const owner = spec.public ? {} : { project: chooseProject(identity, spec.project) };
  authorize(identity, 'write', resourceOf({ ...spec, ...owner }), spec.name);
  await checkReferences(deps, spec);
  if (owner.project && deps.policy?.defaultQuotas)
    await deps.limits.ensureDefaultQuotas(owner.project, deps.policy.defaultQuotas);
  const at = deps.now().toISOString();
  const template: TemplateRecord = {
    ...ownedSpec(spec, owner.project),
    id: newTemplateId(deps),
    createdAt: at,
    updatedAt: at,
    createdBy: identity.name,
    revision: 1,
  };
  await deps.catalog.createTemplate(template);
  return template;
}

export async function getTemplate(
  deps: TemplateDeps,
  identity: Identity,
  ref: string,
  project?: string,
): Promise<TemplateRecord> {
  return resolveTemplate(deps, identity, ref, project);
}

/** Members see their projects' templates and the public ones, admins all; `project` keeps that project's only. */
export async function listTemplates(
  deps: TemplateDeps,
  identity: Identity,
  query: ListTemplatesQuery,
): Promise<Page<TemplateRecord>> {
  const all = await deps.catalog.listTemplates();
  const shown = query.project
    ? canAccessProject(identity, query.project)
      ? all.filter((t) => t.project === query.project)
      : []
    : all.filter((t) => allowed(identity, 'read', resourceOf(t)));
  // Public templates first, then by project and name.
  return pageOf('templates', shown, query, (t) => `${t.project ?? ''}/${t.name}`);
}

/** `PATCH`: any field but the owner; the merged template is checked whole, as on create. */
export async function updateTemplate(
  deps: TemplateDeps,
  identity: Identity,
  ref: string,
  patch: TemplatePatch,
  project?: string,
): Promise<TemplateRecord> {
  const current = await resolveTemplate(deps, identity, ref, project);
  authorize(identity, 'write', resourceOf(current), ref);
  const merged: Record<string, unknown> = { ...specOf(current) };
  for (const [field, value] of Object.entries(patch)) {
    if (value === null) delete merged[field];
    else if (value !== undefined) merged[field] = value;
  }
  const spec = parse(TemplateSpec, merged);
  await checkReferences(deps, spec);
  return replaceTemplate(deps, current, ownedSpec(spec, current.project));
}

/**
 * `DELETE`: refused (409) while active jobs use the template. Race-free: the
 * template is first marked as being deleted, which stops new jobs from being
 * stored against it (the job store checks the mark in the job's own
 * transaction); only then are active jobs looked for. Then either the template,
 * its name and its quota use go in one transaction, or the mark is cleared.
 */
export async function deleteTemplate(
  deps: TemplateDeps,
  identity: Identity,
  ref: string,
  project?: string,
): Promise<void> {
  const found = await resolveTemplate(deps, identity, ref, project);
  authorize(identity, 'write', resourceOf(found), ref);
  const now = deps.now();
  const until = new Date(now.getTime() + DELETE_MARK_MS).toISOString();
  const marked = await deps.catalog.markTemplateDeleting(found.id, until, now.toISOString());
  if (!marked) throw new NotFound('template', ref);
  let deleted = false;
  try {
    const users = (await deps.queue.listActiveJobs()).filter((job) => job.templateId === marked.id).length;
    if (users > 0)
      throw new Conflict(
        `template ${marked.name} is used by ${users} active job${users === 1 ? '' : 's'}; cancel them or wait for them to end`,
      );
    deleted = await deps.catalog.deleteTemplate(marked, until, deps.now().toISOString());
    if (!deleted) throw new Conflict(`deleting template ${marked.name} took too long; retry`);
  } finally {
    if (!deleted) await deps.catalog.clearTemplateDeleting(marked.id, until);
  }
}

/** A route's `{id}`: the template, if the caller may read it (another project's is a 404). */
export async function resolveTemplate(
  deps: TemplateDeps,
  identity: Identity,
  ref: string,
  project?: string,
): Promise<TemplateRecord> {
  const found = await findReadable(deps, identity, ref, project);
  if (!found) throw new NotFound('template', ref);
  return found;
}

/**
 * The template a job names, and the job's project. With the project known (named,
 * or the caller's only one): that project's template of that name, else a public
 * one, else a template id. Otherwise the template decides the project, as for the
 * routes. The template must be the project's or public; anything else is a 400
 * naming `template`.
 */
export async function templateForJob(
  deps: TemplateDeps,
  identity: Identity,
  ref: string,
  requested?: string,
): Promise<{ template: TemplateRecord; project: string }> {
  const known = requested
    ? chooseProject(identity, requested)
    : identity.projects.length === 1
      ? chooseProject(identity, undefined)
      : undefined;
  const template = known
    ? isTemplateId(ref)
      ? await deps.catalog.getTemplate(ref)
      : await deps.catalog.findTemplateIn([known, undefined], ref)
    : await findReadable(deps, identity, ref);
  if (!template) {
    throw new ValidationError([
      {
        field: 'template',
        reason: `no template '${ref}' ${known ? `for project ${known}` : 'in your projects'} or among the public ones`,
      },
    ]);
  }
  const project = known ?? chooseProject(identity, undefined, template.project);
  if (!(template.public || template.project === project)) {
    throw new ValidationError([
      { field: 'template', reason: `no template '${ref}' for project ${project} or among the public ones` },
    ]);
  }
  return { template, project };
}

/**
 * The local config's templates, at every start: a template of the same owner and
 * name is changed in place (its id kept), otherwise it is created.
 */
export async function seedTemplate(deps: Omit<TemplateDeps, 'policy'>, spec: TemplateSpec): Promise<TemplateRecord> {
  if (!spec.public && !spec.project)
    throw new ValidationError([{ field: 'project', reason: "required, or 'public': true" }]);
  await checkReferences(deps, spec);
  const project = spec.public ? undefined : spec.project;
  const existing = await deps.catalog.findTemplate(project, spec.name);
  const at = deps.now().toISOString();
  if (!existing) {
    const template: TemplateRecord = {
      ...ownedSpec(spec, project),
      id: newTemplateId(deps),
      createdAt: at,
      updatedAt: at,
      createdBy: 'config',
      revision: 1,
    };
    await deps.catalog.createTemplate(template);
    return template;
  }
  const wanted = ownedSpec(spec, project);
  if (isDeepStrictEqual(specOf(existing), wanted)) return existing;
  return replaceTemplate(deps, existing, wanted, at);
}

/** `current` with a new spec as its next revision: its id and creation kept. */
async function replaceTemplate(
  deps: Pick<TemplateDeps, 'catalog' | 'now'>,
  current: TemplateRecord,
  spec: TemplateSpec,
  at = deps.now().toISOString(),
): Promise<TemplateRecord> {
  const next: TemplateRecord = {
    ...spec,
    id: current.id,
    createdAt: current.createdAt,
    createdBy: current.createdBy,
    updatedAt: at,
    revision: current.revision + 1,
  };
  await deps.catalog.updateTemplate(current, next, at);
  return next;
}

async function findReadable(
  deps: TemplateDeps,
  identity: Identity,
  ref: string,
  project?: string,
): Promise<TemplateRecord | undefined> {
  if (isTemplateId(ref)) {
    const template = await deps.catalog.getTemplate(ref);
    return template && allowed(identity, 'read', resourceOf(template)) ? template : undefined;
  }
  if (project && !canAccessProject(identity, project)) return undefined;
  const owned = project
    ? [await deps.catalog.findTemplate(project, ref)]
    : identity.admin
      ? (await deps.catalog.listTemplates()).filter((t) => t.project && t.name === ref)
      : await Promise.all(identity.projects.map((p) => deps.catalog.findTemplate(p, ref)));
  const matches = owned.filter((t): t is TemplateRecord => t !== undefined);
  if (matches.length > 1) {
    const projects = matches
      .map((t) => t.project)
      .sort()
      .join(', ');
    throw new ValidationError([
      { field: 'project', reason: `required: projects ${projects} each have a template '${ref}'` },
    ]);
  }
  return matches[0] ?? (await deps.catalog.findTemplate(undefined, ref));
}

/**
 * The pool and the image (and the pinned version) a template names must exist, its jobs must fit the
 * pool's instances, and its root volume the deployment's AMI.
 */
async function checkReferences(
  deps: Pick<TemplateDeps, 'catalog' | 'limits'> & Partial<Pick<TemplateDeps, 'policy'>>,
  spec: TemplateSpec,
): Promise<void> {
  const [pool, image] = await Promise.all([deps.limits.getPool(spec.pool), deps.catalog.getImage(spec.image)]);
  const issues: FieldIssue[] = [];
  if (!pool) issues.push({ field: 'pool', reason: `no pool '${spec.pool}'` });
  else {
    const wholeInstances = gpusIssue(pool, spec.gpus);
    if (wholeInstances) issues.push(wholeInstances);
  }
  if (!image) issues.push({ field: 'image', reason: `no image '${spec.image}' in the catalog` });
  else if (spec.imageVersion !== undefined && !versionToRun(image, spec.imageVersion)) {
    issues.push({ field: 'imageVersion', reason: `image ${image.name} has versions 1 to ${image.versions.length}` });
  }
  const minVolume = minVolumeSizeGb(deps);
  if (spec.volumeSizeGb !== undefined && spec.volumeSizeGb < minVolume) {
    issues.push({
      field: 'volumeSizeGb',
      reason: `must be at least ${minVolume}: the root snapshot of this deployment's GPU AMI, which a root volume cannot be smaller than`,
    });
  }
  if (issues.length) throw new ValidationError(issues);
}

function resourceOf(template: Pick<TemplateSpec, 'project' | 'public'>): Resource {
  return template.public ? { kind: 'template', public: true } : { kind: 'template', project: template.project };
}

/** The spec as stored: owned by `project` or public, without absent fields. */
function ownedSpec(spec: TemplateSpec, project: string | undefined): TemplateSpec {
  const { project: _project, public: _public, ...rest } = spec;
  const owned: Record<string, unknown> = { ...rest, ...(project ? { project } : { public: true }) };
  for (const [field, value] of Object.entries(owned)) if (value === undefined) delete owned[field];
  return owned as TemplateSpec;
}

/** The fields an owner sets: a record without its bookkeeping. */
function specOf(template: TemplateRecord): TemplateSpec {
  const { id: _id, createdAt: _c, updatedAt: _u, createdBy: _b, revision: _r, ...spec } = template;
  // Kept by versions that accepted it and never used it: TemplateSpec now refuses it.
  delete (spec as { sshPublicKey?: string }).sshPublicKey;
  return spec;
}

function isTemplateId(ref: string): boolean {
  return ref.startsWith(TEMPLATE_ID_PREFIX);
}

/** `tpl-` and the deployment's id generator's random part (its own kind prefix, like `j-`, dropped). */
function newTemplateId(deps: Pick<Deps, 'newId'>): string {
  return `${TEMPLATE_ID_PREFIX}${deps.newId().replace(/^[a-z]+-/, '')}`;
}
