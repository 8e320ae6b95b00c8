/**
 * The upload of a job's `$FLARE_OUTPUT_DIR` at its end on AWS: the script SSM Run
 * Command runs on the job's first instance before it is terminated, and how its
 * report becomes the job's `outputs` record (core/outputs.ts).
 *
 * The instance has no S3 permission of its own: it gets a presigned POST whose
 * policy pins the key prefix `<project>/<jobId>/` and the size of each file
 * (S3 refuses any other key or a larger body), signed by the tasks function. The
 * script stops the job's container first (its files are final then), keeps whole
 * files in path order while they fit the per-job cap (withinCap's rule), and
 * posts each. The upload request (URL and signed fields) travels as base64 of
 * JSON and is read by a fixed Python program: no shell parses it. The only other
 * values in the script are the validated job id and fixed paths.
 */
import { z } from 'zod';
import { assertJobId, containerName, encodedFileLines, INSTANCE_STATE_DIR } from './container-command.js';
import { ValidationError } from './errors.js';
import type { JobOutputsRecord } from './job.js';
import { capError } from './outputs.js';

/** What the instance is given to upload with: a presigned POST (S3's browser-based upload form). */
export interface OutputsUploadRequest {
  /** The bucket's URL the form is posted to. */
  url: string;
  /** The signed form fields (policy, credential, date, signature, token), sent before `key` and the file. */
  fields: Record<string, string>;
  /** Every key starts with it (`<project>/<jobId>/`); the policy refuses any other. */
  prefix: string;
  /** The per-job cap: files past it, in path order, are not uploaded. */
  maxBytes: number;
  /** The largest single file the policy accepts (S3 takes at most 5 GiB in one POST). */
  maxFileBytes: number;
}

/** The first line of the script's standard output: what it kept, dropped and failed to upload. */
export const UPLOAD_REPORT_PREFIX = 'flare-outputs: ';
/** Seconds the upload may take on the instance (its Run Command's executionTimeout). Keep it under the dead-man grace. */
export const OUTPUTS_UPLOAD_SECONDS = 600;
/** SIGTERM to SIGKILL when the upload stops a job's container that still runs (a cancel). */
export const OUTPUTS_STOP_GRACE_SECONDS = 10;

/**
 * Walks the output directory (symbolic links are neither followed nor kept), applies
 * the cap, posts each kept file as multipart/form-data streamed from disk, and
 * prints one JSON report line. A file whose name cannot be a key (not UTF-8, a
 * backslash, longer than the API serves) or larger than one POST takes counts as
 * failed. Exit 1 when any upload failed. Fixed text: no single quote in it.
 */
export const UPLOAD_PROGRAM = [
  'import json, os, sys, urllib.error, urllib.request, uuid',
  'root, request_file = sys.argv[1], sys.argv[2]',
  'with open(request_file, encoding="utf-8") as f:',
  '    req = json.load(f)',
  'found = []',
  'for dirpath, dirnames, filenames in os.walk(root):',
  '    dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]',
  '    for name in filenames:',
  '        full = os.path.join(dirpath, name)',
  '        if os.path.islink(full) or not os.path.isfile(full):',
  '            continue',
  '        found.append((os.path.relpath(full, root).replace(os.sep, "/"), os.path.getsize(full), full))',
  'found.sort()',
  'report = {"kept": 0, "keptBytes": 0, "dropped": 0, "droppedBytes": 0, "failed": 0, "failedBytes": 0}',
  'reason = None',
  'def fail(size, why):',
  '    global reason',
  '    report["failed"] += 1',
  '    report["failedBytes"] += size',
  '    reason = reason or why',
  'def post(key, path, size):',
  '    boundary = uuid.uuid4().hex',
  '    parts = list(req["fields"].items()) + [("key", key)]',
  '    head = b"".join(("--%s\\r\\nContent-Disposition: form-data; name=\\"%s\\"\\r\\n\\r\\n%s\\r\\n" % (boundary, k, v)).encode("utf-8") for k, v in parts)',
  '    head += ("--%s\\r\\nContent-Disposition: form-data; name=\\"file\\"; filename=\\"file\\"\\r\\nContent-Type: application/octet-stream\\r\\n\\r\\n" % boundary).encode()',
  '    tail = ("\\r\\n--%s--\\r\\n" % boundary).encode()',
  '    def body():',
  '        yield head',
  '        with open(path, "rb") as f:',
  '            while True:',
  '                chunk = f.read(1 << 20)',
  '                if not chunk:',
  '                    break',
  '                yield chunk',
  '        yield tail',
  '    headers = {"Content-Type": "multipart/form-data; boundary=" + boundary, "Content-Length": str(len(head) + size + len(tail))}',
  '    urllib.request.urlopen(urllib.request.Request(req["url"], data=body(), method="POST", headers=headers), timeout=60).read()',
  'total = 0',
  'for rel, size, full in found:',
  '    try:',
  '        rel.encode("utf-8")',
  '        namable = "\\\\" not in rel and len(rel) <= 900',
  '    except UnicodeEncodeError:',
  '        namable = False',
  '    if not namable:',
  '        fail(size, "a file name that cannot be a key")',
  '        continue',
  '    if total + size > req["maxBytes"]:',
  '        report["dropped"] += 1',
  '        report["droppedBytes"] += size',
  '        continue',
  '    if size > req["maxFileBytes"]:',
  '        fail(size, "a file larger than one upload takes")',
  '        continue',
  '    try:',
  '        post(req["prefix"] + rel, full, size)',
  '    except urllib.error.HTTPError as error:',
  '        fail(size, "HTTP %d" % error.code)',
  '        continue',
  '    except Exception as error:',
  '        fail(size, type(error).__name__)',
  '        continue',
  '    total += size',
  '    report["kept"] += 1',
  '    report["keptBytes"] += size',
  'if reason:',
  '    report["reason"] = reason',
  'print("flare-outputs: " + json.dumps(report), flush=True)',
  'sys.exit(1 if report["failed"] else 0)',
].join('\n');

/** Where the instance keeps the job's output directory (ssm-commands.ts mounts it at /outputs). */
export function uploadScript(jobId: string, outputDir: string, request: OutputsUploadRequest): string {
  assertJobId(jobId);
  if (!outputDir.startsWith('/') || !/^[A-Za-z0-9/_.-]+$/.test(outputDir) || outputDir.split('/').includes('..'))
    throw new ValidationError([{ field: 'outputDir', reason: 'must be a plain absolute path' }]);
  if (!request.prefix.endsWith(`/${jobId}/`))
    throw new ValidationError([{ field: 'prefix', reason: `must end with /${jobId}/` }]);
  const requestFile = `${INSTANCE_STATE_DIR}/${jobId}.upload.json`;
  const name = containerName(jobId);
  return [
    '#!/bin/sh',
    `# Flare job ${jobId}: upload its output directory before its instance goes; generated by uploadScript().`,
    '# The signed upload request is only inside the base64 block and no shell parses it.',
    'set -u',
    'umask 077',
    `mkdir -p ${INSTANCE_STATE_DIR}`,
    ...encodedFileLines(requestFile, request),
    // A cancelled job still runs: its files are final once its container has stopped.
    `if [ "$(docker container inspect --format '{{.State.Running}}' ${name} 2>/dev/null)" = true ]; then timeout ${OUTPUTS_STOP_GRACE_SECONDS + 30} docker stop --time ${OUTPUTS_STOP_GRACE_SECONDS} ${name} > /dev/null 2>&1 || true; fi`,
    'code=0',
    `python3 -c '${UPLOAD_PROGRAM}' ${outputDir} ${requestFile} || code=$?`,
    `rm -f ${requestFile}`,
    'exit "$code"',
    '',
  ].join('\n');
}

const UploadReport = z.object({
  kept: z.number().int().min(0),
  keptBytes: z.number().int().min(0),
  dropped: z.number().int().min(0),
  droppedBytes: z.number().int().min(0),
  failed: z.number().int().min(0),
  failedBytes: z.number().int().min(0),
  reason: z.string().max(200).optional(),
});
export type UploadReport = z.infer<typeof UploadReport>;

/** The report line of an upload script's output; undefined when it never got that far. */
export function readUploadReport(stdout: string): UploadReport | undefined {
  const line = stdout.split('\n').find((l) => l.startsWith(UPLOAD_REPORT_PREFIX));
  if (!line) return undefined;
  try {
    const parsed = UploadReport.safeParse(JSON.parse(line.slice(UPLOAD_REPORT_PREFIX.length)));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** The job's `outputs` for what the upload reported: the cap's message as locally, and any failure said, never silent. */
export function uploadedOutputsRecord(report: UploadReport, maxBytes: number): JobOutputsRecord {
  const record: JobOutputsRecord = { count: report.kept, bytes: report.keptBytes };
  const errors: string[] = [];
  if (report.dropped > 0) {
    record.truncated = true;
    errors.push(capError(report.dropped, report.droppedBytes, maxBytes));
  }
  if (report.failed > 0)
    errors.push(
      `upload failed for ${report.failed} files (${report.failedBytes} bytes)${report.reason ? `: ${report.reason}` : ''}`,
    );
  if (errors.length > 0) record.error = errors.join('; ');
  return record;
}
