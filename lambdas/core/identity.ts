/** Who is calling, and the one place that decides what they may touch. */
import { Forbidden, ValidationError } from './errors.js';

export interface Identity {
  name: string;
  projects: string[];
  admin: boolean;
}

export function canAccessProject(identity: Identity, project: string): boolean {
  return identity.admin || identity.projects.includes(project);
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
  throw new ValidationError([{ field: 'project', reason: identity.projects.length ? `required: you are a member of ${identity.projects.join(', ')}` : 'required: you are not a member of any project' }]);
}
