import type { TemplateSpec } from '../core/schemas.js';

/** One version of a catalog image: appended, never changed or removed. */
export interface ImageVersion {
  /** 1, 2, ... in the order they were added. */
  version: number;
  reference: string;
  digest: string;
  addedAt: string;
  addedBy: string;
}

export interface ImageRecord {
  name: string;
  /** Oldest first; the last is the latest. */
  versions: ImageVersion[];
  createdAt: string;
}

/** A stored template: its spec (owner normalised to `project` or `public: true`) and bookkeeping. */
export type TemplateRecord = TemplateSpec & {
  id: string;
  createdAt: string;
  updatedAt: string;
  createdBy: string;
  /** Bumped by every change; updates are conditioned on it. */
  revision: number;
};

/**
 * Templates and images. Every write is conditional: names stay unique per owner,
 * image versions are only appended, and the `templates` quota is counted in the
 * same transaction that creates or deletes a project template.
 */
export interface Catalog {
  getImage(name: string): Promise<ImageRecord | undefined>;
  listImages(): Promise<ImageRecord[]>;
  /** Append `version` (creating the image with it when `version.version` is 1) if the image has exactly
   *  `version.version - 1` versions; false when another writer changed it first. */
  appendImageVersion(name: string, version: ImageVersion): Promise<boolean>;

  getTemplate(id: string): Promise<TemplateRecord | undefined>;
  /** The template called `name` of `project`, or among the public ones when `project` is undefined. */
  findTemplate(project: string | undefined, name: string): Promise<TemplateRecord | undefined>;
  /** The template called `name` of the first owner in `projects` (undefined: the public ones) that has one,
   *  all owners looked up at once. */
  findTemplateIn(projects: readonly (string | undefined)[], name: string): Promise<TemplateRecord | undefined>;
  listTemplates(): Promise<TemplateRecord[]>;
  /** The template, its name claim and (project templates) one `templates` of the project's quota, in one
   *  transaction. Throws Conflict when the name is taken, QuotaExceeded when the quota is used up. */
  createTemplate(template: TemplateRecord): Promise<void>;
  /** Replace `previous` with `next` (same id and owner) if it is still at `previous.revision` and not being
   *  deleted at `now`; a rename moves the name claim. Throws Conflict otherwise or when the new name is taken. */
  updateTemplate(previous: TemplateRecord, next: TemplateRecord, now: string): Promise<void>;
  /** Mark the template as being deleted until `until`, unless another delete holds a mark that is live at
   *  `now` (Conflict). While marked, no job can be stored against it (JobRecords.createJob checks).
   *  Returns the template as marked, undefined when there is none. */
  markTemplateDeleting(id: string, until: string, now: string): Promise<TemplateRecord | undefined>;
  /** Remove our mark (`until`) again. */
  clearTemplateDeleting(id: string, until: string): Promise<void>;
  /** Delete the template, its name claim and (project templates) give back one `templates` of the quota,
   *  if our mark `until` is still there and live at `now`; false otherwise. */
  deleteTemplate(template: TemplateRecord, until: string, now: string): Promise<boolean>;
}
