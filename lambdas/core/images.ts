/**
 * The image catalog: only catalog images run, and they run by digest. Admins add
 * versions `{ reference, digest }`; a version is never changed or removed, so a
 * job's `image` (`reference@digest`) always names what the catalog said at submit.
 */
import type { Deps } from './deps.js';
import { ecrPullIssue } from './ecr.js';
import { Conflict, NotFound, Unprocessable } from './errors.js';
import { authorize, requireAdmin, type Identity } from './identity.js';
import { pageOf, type PageQuery } from './pagination.js';
import type { ImageSpec } from './schemas.js';
import type { ImageRecord, ImageVersion } from '../ports/catalog.js';
import type { Page } from '../ports/jobs.js';

/**
 * The most versions one image keeps. An image is one DynamoDB item, and an item is
 * capped at ~400 KB. A version takes ~150 bytes with a typical reference, so that
 * would be a few thousand versions; with the longest reference (255 characters)
 * and a long `addedBy` it is ~550 bytes, and 700 of those still fit. Past the cap
 * an admin adds the image under a new name.
 */
export const MAX_IMAGE_VERSIONS = 700;
/** Appends lost to concurrent appends before giving up (each loss means another version landed). */
const APPEND_ATTEMPTS = 10;

type CatalogDeps = Pick<Deps, 'catalog' | 'now' | 'policy'>;

/** `POST /v1/images`: a new image or a new version of one; the same reference and digest again changes nothing. */
export async function addImage(
  deps: CatalogDeps,
  identity: Identity,
  spec: ImageSpec,
): Promise<{ image: ImageRecord; added: boolean }> {
  requireAdmin(identity, 'add images to the catalog');
  // A private ECR image the instance role may not read would fail every job at its pull.
  const unpullable = deps.policy?.ecrRepositories && ecrPullIssue(spec.reference, deps.policy.ecrRepositories);
  if (unpullable) throw new Unprocessable(`reference ${unpullable}`);
  return appendVersion(deps, spec, identity.name, (versions) => versions.some((v) => sameImage(v, spec)));
}

/**
 * The local config's images, at every start. Nothing changes while the catalog
 * already says what the config says: each entry is a version of its image, and
 * the last entry of an image is its latest. An entry that is not there yet, or a
 * last entry that is not the latest (the config went back to an older digest),
 * is appended as a new version.
 */
export async function seedImages(deps: CatalogDeps, specs: readonly ImageSpec[]): Promise<void> {
  const last = new Map(specs.map((spec) => [spec.name, spec]));
  for (const spec of specs) {
    const latest = last.get(spec.name) === spec;
    await appendVersion(deps, spec, 'config', (versions) =>
      latest
        ? versions.length > 0 && sameImage(versions[versions.length - 1], spec)
        : versions.some((v) => sameImage(v, spec)),
    );
  }
}

export async function getImage(deps: CatalogDeps, identity: Identity, name: string): Promise<ImageRecord> {
  authorize(identity, 'read', { kind: 'image' }, name);
  const image = await deps.catalog.getImage(name);
  if (!image) throw new NotFound('image', name);
  return image;
}

export async function listImages(deps: CatalogDeps, identity: Identity, query: PageQuery): Promise<Page<ImageRecord>> {
  authorize(identity, 'read', { kind: 'image' }, 'catalog');
  return pageOf('images', await deps.catalog.listImages(), query, (image) => image.name);
}

/** The version a job runs: the one `pinned`, else the latest; undefined when the image has no such version. */
export function versionToRun(image: ImageRecord, pinned?: number): ImageVersion | undefined {
  return pinned === undefined
    ? image.versions[image.versions.length - 1]
    : image.versions.find((v) => v.version === pinned);
}

/** What docker pulls: the tag for people, the digest for what actually runs. */
export function imageReference(version: Pick<ImageVersion, 'reference' | 'digest'>): string {
  return `${version.reference}@${version.digest}`;
}

async function appendVersion(
  deps: CatalogDeps,
  spec: ImageSpec,
  addedBy: string,
  present: (versions: ImageVersion[]) => boolean,
): Promise<{ image: ImageRecord; added: boolean }> {
  for (let attempt = 1; ; attempt++) {
    const image = await deps.catalog.getImage(spec.name);
    const versions = image?.versions ?? [];
    if (image && present(versions)) return { image, added: false };
    if (versions.length >= MAX_IMAGE_VERSIONS) {
      throw new Unprocessable(
        `image ${spec.name} has ${versions.length} versions, the most one image keeps; add this one under a new name`,
      );
    }
    const version: ImageVersion = {
      version: versions.length + 1,
      reference: spec.reference,
      digest: spec.digest,
      addedAt: deps.now().toISOString(),
      addedBy,
    };
    if (await deps.catalog.appendImageVersion(spec.name, version)) {
      return {
        image: { name: spec.name, createdAt: image?.createdAt ?? version.addedAt, versions: [...versions, version] },
        added: true,
      };
    }
    if (attempt >= APPEND_ATTEMPTS)
      throw new Conflict(`image ${spec.name} kept changing while a version was added; retry`);
  }
}

function sameImage(version: ImageVersion, spec: ImageSpec): boolean {
  return version.reference === spec.reference && version.digest === spec.digest;
}
