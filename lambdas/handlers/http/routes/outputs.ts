/** `/v1/jobs/{id}/outputs`: what a job kept of `$FLARE_OUTPUT_DIR`, listed and downloaded. */
import { z } from 'zod';
import type { Deps } from '../../../core/deps.js';
import { downloadJobOutput, listJobOutputs, outputPathIssue } from '../../../core/outputs.js';
import { JobOutputs } from '../../../core/views.js';
import { fileBody, json, type Route } from '../middleware.js';
import { JobParams } from './jobs.js';
import { route } from './route.js';

const OutputParams = JobParams.extend({
  path: z
    .string()
    .superRefine((path, ctx) => {
      const issue = outputPathIssue(path);
      if (issue) ctx.addIssue({ code: 'custom', message: issue });
    })
    .meta({
      description: "The file's path relative to the output directory, as listed (`sub/n.txt`; '/' may stay unencoded).",
    }),
});

const OutputQuery = z.strictObject({
  link: z
    .enum(['true', 'false'])
    .optional()
    .describe(
      "`true`: where the answer would be a 307 (AWS), a 200 `{ url, expiresAt }` instead, for a page whose fetch cannot follow a redirect to another origin (the dashboard navigates to `url`). The local control plane answers with the file's bytes either way.",
    ),
});

/** Where a file kept in the outputs bucket can be fetched, and until when. */
export const OutputLink = z
  .strictObject({
    url: z.string().describe("A presigned GET of the file, answered as an attachment under the file's own name"),
    expiresAt: z.string().describe('ISO 8601 UTC: when the URL stops working (5 minutes after it was made)'),
  })
  .meta({ id: 'OutputLink' });

export function outputRoutes(deps: () => Deps): Route[] {
  return [
    route({
      method: 'GET',
      path: '/v1/jobs/{id}/outputs',
      summary: 'Files the job kept of its output directory ($FLARE_OUTPUT_DIR)',
      description:
        'Every regular file under the output directory, kept after the job ended whatever its outcome, until the job is removed or its retention passes. The job record says how many files and bytes were kept (`outputs`), and whether the per-job cap left some out.',
      access: 'member',
      params: JobParams,
      responses: { 200: { description: 'Every file kept, by path', schema: JobOutputs } },
      handle: async ({ identity, params }) => json(200, await listJobOutputs(deps(), identity, params.id)),
    }),
    route({
      method: 'GET',
      path: '/v1/jobs/{id}/outputs/{path+}',
      summary: 'Download one file the job kept',
      description:
        "The file's bytes (application/octet-stream) on the local control plane; on AWS a 307 to a presigned URL of the outputs bucket, valid for a few minutes. A path with '..', '.' or empty segments, or an absolute one, is a 400 naming `path`, whatever its encoding.",
      access: 'member',
      params: OutputParams,
      query: OutputQuery,
      responses: {
        200: {
          description:
            "The file's bytes (local control plane); on AWS with `link=true`, the JSON `{ url, expiresAt }` of the presigned GET instead of a 307",
          binary: true,
          schema: OutputLink,
          headers: {
            'Content-Length': { description: "The size of the file in bytes (the file's bytes only)" },
            'Cache-Control': { description: '`no-store` on the link: the URL expires' },
          },
        },
        307: {
          description: 'AWS: the file is in the outputs bucket; follow `Location` (a short-lived presigned GET)',
          headers: {
            Location: { description: 'The presigned URL, valid for 5 minutes', required: true },
            'Cache-Control': { description: '`no-store`: the URL expires', required: true },
          },
        },
      },
      handle: async ({ identity, params, query }) => {
        const found = await downloadJobOutput(deps(), identity, params.id, params.path);
        if (found.kind === 'file') return fileBody(found.hostPath, found.size);
        if (query.link === 'true')
          return json(200, { url: found.url, expiresAt: found.expiresAt }, { 'cache-control': 'no-store' });
        return { statusCode: 307, headers: { location: found.url, 'cache-control': 'no-store' } };
      },
    }),
  ];
}
