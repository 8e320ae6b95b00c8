/** `/v1/images`: the image catalog; admins add versions, nothing is overwritten or deleted. */
import { z } from 'zod';
import type { Deps } from '../../../core/deps.js';
import { addImage, getImage, listImages } from '../../../core/images.js';
import { PageQuery } from '../../../core/pagination.js';
import { ImageSpec } from '../../../core/schemas.js';
import { Image, page } from '../../../core/views.js';
import { json, type Route } from '../middleware.js';
import { route } from './route.js';

const ImageParams = z.object({ name: z.string().min(1).max(128) });

export function imageRoutes(deps: () => Deps): Route[] {
  return [
    route({
      method: 'POST',
      path: '/v1/images',
      errors: [422],
      summary: 'Add an image, or a version of one',
      description:
        "Creates the image or appends a version `{ reference, digest }` (201). The same reference and digest as a version already there changes nothing (200). Versions are never overwritten or removed; jobs run their template's pinned version or the latest at submit, by digest. On AWS a private Amazon ECR reference outside the repositories the job instances may pull from (flare:ecrRepositories) is refused (422).",
      access: 'admin',
      body: ImageSpec,
      responses: {
        201: {
          description: 'The image with the version added (last)',
          schema: Image,
          headers: { Location: { description: 'The path of the image', required: true } },
        },
        200: {
          description: 'The image already had this reference and digest: nothing changed',
          schema: Image,
          headers: { Location: { description: 'The path of the image', required: true } },
        },
      },
      handle: async ({ identity, body }) => {
        const { image, added } = await addImage(deps(), identity, body);
        return json(added ? 201 : 200, image, { location: `/v1/images/${encodeURIComponent(image.name)}` });
      },
    }),
    route({
      method: 'GET',
      path: '/v1/images',
      summary: 'List the catalog, with every version of each image',
      access: 'member',
      query: PageQuery,
      responses: { 200: { description: 'One page of images, by name', schema: page(Image) } },
      handle: async ({ identity, query }) => json(200, await listImages(deps(), identity, query)),
    }),
    route({
      method: 'GET',
      path: '/v1/images/{name}',
      summary: 'Read an image and its versions, oldest first',
      access: 'member',
      params: ImageParams,
      responses: { 200: { description: 'The image and its versions', schema: Image } },
      handle: async ({ identity, params }) => json(200, await getImage(deps(), identity, params.name)),
    }),
  ];
}
