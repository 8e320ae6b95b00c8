/**
 * Who is calling, and the one place that decides what they may touch. Every
 * route's access is decided here: core asks `authorize` (or `visibleProjects`
 * for listings) before it reads or changes anything.
 *
 * | resource                  | read                  | write               |
 * | ------------------------- | --------------------- | ------------------- |
 * | job                       | members of its project | members of its project |
 * | template of a project     | members of the project | members of the project |
 * | public template           | anyone signed in      | admins              |
 * | quota of a project        | members of the project | admins              |
 * | pool, image               | anyone signed in      | admins              |
 * | stats of a project        | members of the project | -                   |
 * | stats of every project    | admins                | -                   |
 *
 * Admins may do everything. A resource the caller may not read is a 404 (never
 * a 403 that confirms it exists); one they may read but not change is a 403.
 */
import { Forbidden, NotFound, ValidationError } from './errors.js';

export interface Identity {
  name: string;
  projects: string[];
  admin: boolean;
}

export type Action = 'read' | 'write';

/** What is being touched, as far as access is concerned. */
export type Resource =
  | { kind: 'job'; project: string }
  | { kind: 'template'; project?: string; public?: boolean }
  | { kind: 'quota'; project: string }
  | { kind: 'pool' }
  | { kind: 'image' }
  /** `project` undefined: every project's figures. */
  | { kind: 'stats'; project?: string };

export function canAccessProject(identity: Identity, project: string): boolean {
  return identity.admin || identity.projects.includes(project);
}

/** The access table above, as code. */
export function allowed(identity: Identity, action: Action, resource: Resource): boolean {
  if (identity.admin) return true;
  switch (resource.kind) {
    case 'job':
      return identity.projects.includes(resource.project);
    case 'template':
      if (resource.public) return action === 'read';
      return resource.project !== undefined && identity.projects.includes(resource.project);
    case 'quota':
      return action === 'read' && identity.projects.includes(resource.project);
    case 'pool':
    case 'image':
      return action === 'read';
    case 'stats':
      return action === 'read' && resource.project !== undefined && identity.projects.includes(resource.project);
  }
}

/**
 * Throws unless `identity` may do `action` on `resource`: NotFound (named by
 * `kind` and `id`) when it may not even read it, Forbidden when it may read but
 * not change it.
 */
export function authorize(identity: Identity, action: Action, resource: Resource, id: string): void {
  if (allowed(identity, action, resource)) return;
  if (action === 'write' && allowed(identity, 'read', resource)) {
    throw new Forbidden(`only ${writers(resource)} may change ${resource.kind} ${id}`);
  }
  throw new NotFound(resource.kind, id);
}

/** For writes to things that do not exist yet (a new image, pool cap, quota): admins only. */
export function requireAdmin(identity: Identity, what: string): void {
  if (!identity.admin) throw new Forbidden(`only admins may ${what}`);
}

function writers(resource: Resource): string {
  return resource.kind === 'template' && !resource.public ? `members of project ${resource.project}` : 'admins';
}

/** The projects a listing may show: undefined means all (admins). */
export function visibleProjects(identity: Identity, requested?: string): string[] | undefined {
  if (requested) return canAccessProject(identity, requested) ? [requested] : [];
  return identity.admin ? undefined : identity.projects;
}

/** The project a new resource belongs to: named in the body, else the only one the caller has. */
export function chooseProject(identity: Identity, requested: string | undefined, fallback?: string): string {
  if (requested) {
    if (!canAccessProject(identity, requested)) throw new Forbidden(`you are not a member of project ${requested}`);
    return requested;
  }
  if (fallback && canAccessProject(identity, fallback)) return fallback;
  if (identity.projects.length === 1) return identity.projects[0];
  throw new ValidationError([
    {
      field: 'project',
      reason: identity.projects.length
        ? `required: you are a member of ${identity.projects.join(', ')}`
        : 'required: you are not a member of any project',
    },
  ]);
}
